// Type dispatch shared by the CPU and CUDA index/copy kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../tensor.h"

namespace lowbit::kernels {

// Calls f with a value of an unsigned type as wide as one element: the copy kernels move
// bits, so every dtype of one width shares an instantiation.
template <class F>
void by_width(size_t element_size, F&& f) {
  switch (element_size) {
    case 1: f(uint8_t{}); break;
    case 4: f(uint32_t{}); break;
    default: f(uint64_t{}); break;
  }
}

// Calls f with the index tensor's data as const int32_t* or const int64_t* (its dtype).
template <class F>
void with_index(const Tensor& index, F&& f) {
  if (index.dtype() == DType::i32) f(index.data<int32_t>());
  else f(index.data<int64_t>());
}

}  // namespace lowbit::kernels
