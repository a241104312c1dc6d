// CUDA optimizer kernels: the SGD and Adam updates of core/cpu/optim.cpp with the same
// per-element double arithmetic, and the blockwise sum of squares of gradient clipping.
// Every double operation is spelled as a correctly rounded intrinsic, with an explicit FMA
// exactly where GCC contracts the CPU loop (-O3 -march=native on x86-64 with FMA, read from
// the object code of core/cpu/optim.cpp): the updates then match the CPU bit for bit there.
// A CPU build without FMA (LOWBIT_NATIVE=OFF on such a CPU) differs in the last bits.
#include "../kernels/optim.h"
#include "common.cuh"
#include "warp.cuh"

namespace lowbit::cuda {
namespace {

#define LOWBIT_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{blockDim.x} * gridDim.x)

__device__ __forceinline__ double dadd(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double dsub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double dmul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double ddiv(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ double dfma(double a, double b, double c) { return __fma_rn(a, b, c); }

// d = g + wd*p; buf = first ? d : mom*buf + damp*d; d = nesterov ? d + mom*buf : buf; p -= lr*d.
__global__ void sgd_kernel(float* p, const float* g, float* buf, SgdStep s, int64_t n) {
  LOWBIT_GRID_LOOP(i, n) {
    const float pi = p[i];
    double d = dfma(s.weight_decay, static_cast<double>(pi), static_cast<double>(g[i]));
    if (buf) {
      const double bv = s.first ? d : dfma(s.momentum, static_cast<double>(buf[i]), dmul(s.damp, d));
      const float bf = static_cast<float>(bv);
      buf[i] = bf;
      d = s.nesterov ? dfma(s.momentum, static_cast<double>(bf), d) : static_cast<double>(bf);
    }
    p[i] = static_cast<float>(dfma(-s.lr, d, static_cast<double>(pi)));
  }
}

// w = p*shrink; g' = g + l2*p; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'*g'; (amsgrad) vmax = max(vmax, v);
// p = w - step_size*m / (sqrt(v or vmax)/bc2_sqrt + eps), with m, v, vmax rounded to f32 where stored.
__global__ void adam_kernel(float* p, const float* g, float* m, float* v, float* vmax, AdamStep s, int64_t n) {
  const double c1 = 1 - s.beta1, c2 = 1 - s.beta2;  // the CPU's (1 - b1), (1 - b2), in double on the host too
  LOWBIT_GRID_LOOP(i, n) {
    const double pi = static_cast<double>(p[i]);
    const double w = dmul(pi, s.shrink);
    const double gi = dfma(s.l2, pi, static_cast<double>(g[i]));
    const float mf = static_cast<float>(dfma(s.beta1, static_cast<double>(m[i]), dmul(c1, gi)));
    const float vf = static_cast<float>(dfma(s.beta2, static_cast<double>(v[i]), dmul(dmul(c2, gi), gi)));
    m[i] = mf;
    v[i] = vf;
    double vi = vf;
    if (vmax) {
      const float old = vmax[i];
      const float mx = old < vf ? vf : old;  // std::max(old, v): keeps old when either is NaN
      vmax[i] = mx;
      vi = mx;
    }
    const double denom = dadd(ddiv(__dsqrt_rn(vi), s.bc2_sqrt), s.eps);
    p[i] = static_cast<float>(dsub(w, ddiv(dmul(s.step_size, static_cast<double>(mf)), denom)));
  }
}

// One warp per block of kSumSquaresBlock elements. The squares of f32 values are exact in
// double, and the warp adds them one by one in index order (every lane keeps the same running
// sum), so each partial is bit-identical to the CPU's sequential loop.
__global__ void sum_squares_kernel(const float* g, int64_t n, int64_t nblocks, double* partial) {
  const int64_t w = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / kWarp;
  const int ln = lane();
  if (w >= nblocks) return;  // uniform across the warp
  const int64_t begin = w * kSumSquaresBlock;
  const int64_t end = begin + kSumSquaresBlock < n ? begin + kSumSquaresBlock : n;
  double acc = 0;
  for (int64_t i0 = begin; i0 < end; i0 += kWarp) {
    const int64_t i = i0 + ln;
    const double x = i < end ? static_cast<double>(g[i]) : 0.0;
    const double sq = __dmul_rn(x, x);
    const int count = end - i0 < kWarp ? static_cast<int>(end - i0) : kWarp;
    for (int j = 0; j < count; ++j) acc = __dadd_rn(acc, __shfl_sync(0xffffffffu, sq, j));
  }
  if (ln == 0) partial[w] = acc;
}

__global__ void scale_kernel(float* p, float c, int64_t n) {
  LOWBIT_GRID_LOOP(i, n) p[i] *= c;
}

}  // namespace

void sgd_update(Tensor& p, const Tensor& g, Tensor& buf, const SgdStep& s) {
  const int64_t n = p.numel();
  if (n == 0) return;
  const int dev = p.device().index;
  DeviceGuard guard(dev);
  sgd_kernel<<<blocks_for(n), kThreads, 0, stream(dev)>>>(p.data<float>(), g.data<float>(),
                                                          buf.defined() ? buf.data<float>() : nullptr, s, n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void adam_update(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, Tensor& vmax, const AdamStep& s) {
  const int64_t n = p.numel();
  if (n == 0) return;
  const int dev = p.device().index;
  DeviceGuard guard(dev);
  adam_kernel<<<blocks_for(n), kThreads, 0, stream(dev)>>>(p.data<float>(), g.data<float>(), m.data<float>(),
                                                           v.data<float>(),
                                                           vmax.defined() ? vmax.data<float>() : nullptr, s, n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void sum_squares(const std::vector<Tensor>& grads, std::vector<double>& out) {
  out.assign(grads.size(), 0.0);
  if (grads.empty()) return;
  std::vector<int64_t> first(grads.size() + 1, 0);  // partials of grads[k] are [first[k], first[k+1])
  for (size_t k = 0; k < grads.size(); ++k)
    first[k + 1] = first[k] + (grads[k].numel() + kSumSquaresBlock - 1) / kSumSquaresBlock;
  if (first.back() == 0) return;
  const Device device = grads[0].device();
  const int dev = device.index;
  DeviceGuard guard(dev);
  // 8-byte elements from the device allocator hold the double partials.
  Tensor partial = Tensor::empty({first.back()}, DType::i64, device);
  double* pp = static_cast<double*>(partial.raw_data());
  constexpr int64_t kWarpsPerBlock = kThreads / kWarp;
  for (size_t k = 0; k < grads.size(); ++k) {
    const int64_t nb = first[k + 1] - first[k];
    if (nb == 0) continue;
    const auto grid = static_cast<unsigned>((nb + kWarpsPerBlock - 1) / kWarpsPerBlock);
    sum_squares_kernel<<<grid, kThreads, 0, stream(dev)>>>(grads[k].data<float>(), grads[k].numel(), nb,
                                                           pp + first[k]);
    LOWBIT_CUDA_LAUNCH_CHECK();
  }
  // One copy back; each tensor's blocks are then added in order, as on the CPU.
  const Tensor host = partial.to(Device::cpu());
  const double* hp = static_cast<const double*>(host.raw_data());
  for (size_t k = 0; k < grads.size(); ++k) {
    double total = 0;
    for (int64_t b = first[k]; b < first[k + 1]; ++b) total += hp[b];
    out[k] = total;
  }
}

void scale_in_place(Tensor& g, float c) {
  const int64_t n = g.numel();
  if (n == 0) return;
  const int dev = g.device().index;
  DeviceGuard guard(dev);
  scale_kernel<<<blocks_for(n), kThreads, 0, stream(dev)>>>(g.data<float>(), c, n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace lowbit::cuda
