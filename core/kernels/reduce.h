// Reduction kernels: the interface each backend implements.
#pragma once

#include <vector>

#include "../tensor.h"

namespace lowbit {

// logsumexp: log(sum(exp(x))) computed with the slice maximum subtracted first.
enum class ReduceOp : uint8_t { sum, mean, max, min, logsumexp };

// out (the kept axes, contiguous) = op over `axes` of x (f32). For max/min, `index`
// (i64, out's shape) receives the flat index within the reduced sub-space when defined.
using ReduceKernel = void(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, Tensor& out,
                          Tensor* index);
// var = sum((x - mean)^2) / (n - correction) over `axes` (two passes, so no cancellation);
// mean (out's shape) receives the slice means when defined.
using VarKernel = void(const Tensor& x, const std::vector<int64_t>& axes, int64_t correction, Tensor& var,
                       Tensor* mean);
// dx (x's shape, zero-filled here) gets dy at each index recorded by a max/min reduction.
using ReduceScatterKernel = void(const Tensor& dy, const Tensor& index, const std::vector<int64_t>& axes,
                                 Tensor& dx);

namespace cpu {
ReduceKernel reduce;
VarKernel var;
ReduceScatterKernel reduce_scatter;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
ReduceKernel reduce;
VarKernel var;
ReduceScatterKernel reduce_scatter;
}  // namespace cuda

}  // namespace lowbit
