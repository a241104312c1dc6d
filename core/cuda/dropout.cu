// CUDA dropout: the same counter-based Philox-4x32-10 draws as core/cpu/dropout.cpp (one block
// per four elements, counter base + block index), so the mask equals the CPU's bit for bit.
#include "../kernels/dropout.h"
#include "common.cuh"
#include "philox.cuh"

namespace lowbit::cuda {
namespace {

// uint_to_unit of core/rng.h: 24 bits, exact in f32, times an exact power of two.
__device__ __forceinline__ float unit_device(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

// One thread per Philox block: elements 4*blk .. 4*blk+3.
__global__ void dropout_kernel(const float* x, float* y, uint8_t* mask, uint64_t key, uint64_t stream_id, uint64_t base,
                               float p, float scale, int64_t n) {
  const int64_t nblocks = (n + 3) / 4;
  for (int64_t blk = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; blk < nblocks;
       blk += int64_t{blockDim.x} * gridDim.x) {
    const uint4 r = philox4x32_device(key, stream_id, base + static_cast<uint64_t>(blk));
    const uint32_t words[4] = {r.x, r.y, r.z, r.w};
    const int64_t i0 = blk * 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = i0 + j;
      if (i >= n) break;
      // x * (keep * scale) as on the CPU: a dropped inf/NaN stays NaN, as torch's x * mask * scale.
      const bool keep = !(unit_device(words[j]) < p);
      y[i] = x[i] * (static_cast<float>(keep) * scale);
      if (mask) mask[i] = keep;
    }
  }
}

__global__ void dropout_backward_kernel(const float* dy, const uint8_t* mask, float scale, float* dx, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{blockDim.x} * gridDim.x)
    dx[i] = dy[i] * (static_cast<float>(mask[i]) * scale);
}

}  // namespace

void dropout(const Tensor& x, Tensor& y, Tensor& mask, const Generator& gen, uint64_t base, float p, float scale) {
  const int64_t n = x.numel();
  if (n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  dropout_kernel<<<blocks_for((n + 3) / 4), kThreads, 0, stream(dev)>>>(x.data<float>(), y.data<float>(),
                                                                        mask.defined() ? mask.data<uint8_t>() : nullptr,
                                                                        gen.key(), gen.stream(), base, p, scale, n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void dropout_backward(const Tensor& dy, const Tensor& mask, float scale, Tensor& dx) {
  const int64_t n = dy.numel();
  if (n == 0) return;
  const int dev = dy.device().index;
  DeviceGuard g(dev);
  dropout_backward_kernel<<<blocks_for(n), kThreads, 0, stream(dev)>>>(dy.data<float>(), mask.data<uint8_t>(), scale,
                                                                       dx.data<float>(), n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace lowbit::cuda
