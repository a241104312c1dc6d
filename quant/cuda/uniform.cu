// CUDA uniform-grid quantizer kernels: the grid round/clamp of quant/grid.h (the same f32
// division and round-half-even, so values and codes equal the CPU's bit for bit), the
// ste_uniform and lsq backwards (LSQ's alpha sums in double, one fixed-order tree per block of
// 4096 elements, blocks added in order on the host: deterministic, no atomics) and abs-max.
#include "../../core/cuda/common.cuh"
#include "../kernels/uniform.h"

namespace lowbit::cuda {
namespace {

constexpr int64_t kItem = 4096;  // elements per reduction block of the LSQ alpha gradient

#define LOWBIT_QGRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{blockDim.x} * gridDim.x)

// grid_code() of quant/grid.h: rintf is nearbyint in round-to-nearest-even; + 0 turns -0 into +0.
__device__ __forceinline__ float code_of(float x, float alpha, float qmin, float qmax) {
  const float q = rintf(x / alpha) + 0.0f;
  return q < qmin ? qmin : (q > qmax ? qmax : q);
}

__global__ void grid_quantize_kernel(const float* x, const float* alpha, int64_t channels, int64_t inner, float lo,
                                     float hi, float* y, int64_t n) {
  LOWBIT_QGRID_LOOP(i, n) {
    const float a = alpha[channels == 1 ? 0 : i / inner];
    y[i] = code_of(x[i], a, lo, hi) * a;
  }
}

__global__ void grid_codes_kernel(const float* x, const float* alpha, int64_t channels, int64_t inner, float lo,
                                  float hi, int32_t* codes, int64_t n) {
  LOWBIT_QGRID_LOOP(i, n) codes[i] = static_cast<int32_t>(code_of(x[i], alpha[channels == 1 ? 0 : i / inner], lo, hi));
}

__global__ void ste_backward_kernel(const float* x, const float* alpha, int64_t channels, int64_t inner, float lo,
                                    float hi, const float* dy, float* dx, int64_t n) {
  LOWBIT_QGRID_LOOP(i, n) {
    const float v = x[i] / alpha[channels == 1 ? 0 : i / inner];
    dx[i] = v >= lo && v <= hi ? dy[i] : 0.0f;
  }
}

// One block per item (a channel's run of up to kItem elements): dx, and the item's double sum
// of dy * d reduced by a fixed tree in shared memory.
__global__ void lsq_backward_kernel(const float* x, const float* alpha, int64_t inner, int64_t items_per_channel,
                                    float lo, float hi, const float* dy, float* dx, double* partial) {
  __shared__ double red[kThreads];
  const int64_t item = blockIdx.x;
  const int64_t c = item / items_per_channel;
  const int64_t begin = c * inner + (item % items_per_channel) * kItem;
  const int64_t end = begin + kItem < (c + 1) * inner ? begin + kItem : (c + 1) * inner;
  const float a = alpha[c];
  double acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float v = x[i] / a;
    const bool inside = v >= lo && v <= hi;
    if (dx) dx[i] = inside ? dy[i] : 0.0f;
    const float d = inside ? rintf(v) - v : (v < lo ? lo : hi);
    acc += static_cast<double>(dy[i]) * d;
  }
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {  // blockDim.x: a power of 2
    if (static_cast<int>(threadIdx.x) < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[item] = red[0];
}

// One block per channel; max is exact in any order. fmaxf ignores NaN, as std::max(m, NaN) does.
__global__ void abs_max_kernel(const float* x, int64_t inner, float* out) {
  __shared__ float red[kThreads];
  const int64_t c = blockIdx.x;
  float m = 0.0f;
  for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) m = fmaxf(m, fabsf(x[c * inner + i]));
  red[threadIdx.x] = m;
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {  // blockDim.x: a power of 2
    if (static_cast<int>(threadIdx.x) < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
    __syncthreads();
  }
  if (threadIdx.x == 0) out[c] = red[0];
}

struct Layout {
  Tensor alpha;  // on x's device
  int64_t channels = 1, inner = 0, n = 0;
};

Layout layout_of(const Tensor& x, const Tensor& alpha, const char* where) {
  LOWBIT_CHECK(x.dtype() == DType::f32, where, "expects f32 input, got ", dtype_name(x.dtype()));
  LOWBIT_CHECK(alpha.defined() && alpha.dtype() == DType::f32, where, "alpha must be an f32 tensor");
  Layout l;
  l.channels = alpha.numel();
  LOWBIT_CHECK(l.channels == 1 || (x.dim() > 0 && x.size(0) == l.channels), where, "alpha of ", l.channels,
               " values does not match x of shape ", shape_str(x.shape()), " (per channel is along dim 0)");
  l.n = x.numel();
  l.inner = l.channels == 1 ? l.n : l.n / l.channels;
  l.alpha = alpha.to(x.device());
  return l;
}

}  // namespace

void grid_quantize(const Tensor& x, const Tensor& alpha, GridRange range, Tensor& y) {
  const Layout l = layout_of(x, alpha, "grid_quantize");
  if (l.n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  grid_quantize_kernel<<<blocks_for(l.n), kThreads, 0, stream(dev)>>>(
      x.data<float>(), l.alpha.data<float>(), l.channels, l.inner, static_cast<float>(range.qmin),
      static_cast<float>(range.qmax), y.data<float>(), l.n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void grid_codes(const Tensor& x, const Tensor& alpha, GridRange range, Tensor& codes) {
  const Layout l = layout_of(x, alpha, "grid_codes");
  if (l.n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  grid_codes_kernel<<<blocks_for(l.n), kThreads, 0, stream(dev)>>>(
      x.data<float>(), l.alpha.data<float>(), l.channels, l.inner, static_cast<float>(range.qmin),
      static_cast<float>(range.qmax), codes.data<int32_t>(), l.n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void ste_backward(const Tensor& x, const Tensor& alpha, GridRange range, const Tensor& dy, Tensor& dx) {
  const Layout l = layout_of(x, alpha, "ste_uniform_ste");
  if (l.n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  ste_backward_kernel<<<blocks_for(l.n), kThreads, 0, stream(dev)>>>(
      x.data<float>(), l.alpha.data<float>(), l.channels, l.inner, static_cast<float>(range.qmin),
      static_cast<float>(range.qmax), dy.data<float>(), dx.data<float>(), l.n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void lsq_backward(const Tensor& x, const Tensor& alpha, GridRange range, const Tensor& dy, Tensor& dx,
                  std::vector<double>* dalpha) {
  const Layout l = layout_of(x, alpha, "lsq_ste");
  if (dalpha) dalpha->assign(static_cast<size_t>(l.channels), 0.0);
  if (l.n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  const int64_t per = (l.inner + kItem - 1) / kItem, items = per * l.channels;
  // a per-tensor alpha is one "channel" covering every element
  Tensor partial = Tensor::empty({items}, DType::i64, x.device());  // 8-byte storage for the doubles
  lsq_backward_kernel<<<static_cast<unsigned>(items), kThreads, 0, stream(dev)>>>(
      x.data<float>(), l.alpha.data<float>(), l.inner, per, static_cast<float>(range.qmin),
      static_cast<float>(range.qmax), dy.data<float>(), dx.defined() ? dx.data<float>() : nullptr,
      static_cast<double*>(partial.raw_data()));
  LOWBIT_CUDA_LAUNCH_CHECK();
  if (!dalpha) return;
  const Tensor host = partial.to(Device::cpu());
  const double* hp = static_cast<const double*>(host.raw_data());
  for (int64_t c = 0; c < l.channels; ++c) {
    double s = 0;
    for (int64_t k = 0; k < per; ++k) s += hp[c * per + k];
    (*dalpha)[static_cast<size_t>(c)] = s;
  }
}

void abs_max(const Tensor& x, int64_t channels, std::vector<float>& out) {
  out.assign(static_cast<size_t>(channels), 0.0f);
  const int64_t n = x.numel();
  if (n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  Tensor m = Tensor::empty({channels}, DType::f32, x.device());
  abs_max_kernel<<<static_cast<unsigned>(channels), kThreads, 0, stream(dev)>>>(x.data<float>(), n / channels,
                                                                                m.data<float>());
  LOWBIT_CUDA_LAUNCH_CHECK();
  out = m.to_vector<float>();
}

}  // namespace lowbit::cuda
