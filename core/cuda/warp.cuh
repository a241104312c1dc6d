// Warp-level helpers shared by the row-wise CUDA kernels (softmax, losses): one warp per row.
#pragma once

#include <cuda_runtime.h>

namespace lowbit::cuda {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 8;  // warps per block of 256 threads

__device__ inline float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ inline double warp_sum(double v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The row this warp handles, and the lane within it.
__device__ inline int64_t warp_row() { return blockIdx.x * int64_t{kRowsPerBlock} + threadIdx.x / kWarp; }
__device__ inline int lane() { return static_cast<int>(threadIdx.x % kWarp); }

inline unsigned blocks_for_rows(int64_t rows) {
  return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
}

}  // namespace lowbit::cuda
