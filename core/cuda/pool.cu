// CUDA pooling: max (with the i32 index the CPU interface returns), average (torch's
// count_include_pad and ceil-mode windows) and adaptive average, forward and backward.
// Own kernels rather than cuDNN's: cuDNN returns no max index and its padded-window divisor
// and tie rule differ from the CPU's. Each output (forward) or input element (backward,
// gathering instead of scattering, so no atomics) adds its terms in the CPU's order with the
// CPU's float/double types, so results equal the CPU's bit for bit.
#include <cmath>

#include "../kernels/pool.h"
#include "common.cuh"

namespace lowbit::cuda {
namespace {

// Floor and ceiling of a / b for b > 0 and any sign of a.
__device__ int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
__device__ int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// The outputs o along one axis whose window o*stride - pad + [0, span) holds input position i:
// [lo, hi], empty when lo > hi.
__device__ void covering(int64_t i, int64_t stride, int64_t pad, int64_t span, int64_t out, int64_t& lo,
                         int64_t& hi) {
  lo = ceil_div(i + pad - span + 1, stride);
  if (lo < 0) lo = 0;
  hi = floor_div(i + pad, stride);
  if (hi > out - 1) hi = out - 1;
}

// torch's average window (as the CPU's avg_window): the divisor along one axis.
__device__ float avg_divisor(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t size, bool include_pad,
                             int64_t& lo, int64_t& hi) {
  lo = o * stride - pad;
  hi = lo + kernel < size + pad ? lo + kernel : size + pad;
  const int64_t padded = hi - lo;
  if (lo < 0) lo = 0;
  if (hi > size) hi = size;
  return static_cast<float>(include_pad ? padded : hi - lo);
}

// torch's adaptive bin [floor(o*in/out), ceil((o+1)*in/out)).
__device__ int64_t bin_lo(int64_t o, int64_t in, int64_t out) { return o * in / out; }
__device__ int64_t bin_hi(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

#define LOWBIT_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{blockDim.x} * gridDim.x)

// Taps in row-major window order; the first maximum wins, a NaN replaces anything, and the
// first tap inside the input is taken even if it is -inf (as the CPU loop).
__global__ void max_pool_kernel(Pool2dGeometry g, const float* x, float* y, int32_t* index, int64_t total) {
  LOWBIT_GRID_LOOP(e, total) {
    const int64_t ow = e % g.out_w, oh = (e / g.out_w) % g.out_h, p = e / (g.out_w * g.out_h);
    const float* xp = x + p * g.in_h * g.in_w;
    const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
    float m = -INFINITY;
    int32_t idx = -1;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      const int64_t h = h0 + i * g.dilation_h;
      if (h < 0 || h >= g.in_h) continue;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t w = w0 + j * g.dilation_w;
        if (w < 0 || w >= g.in_w) continue;
        const int64_t at = h * g.in_w + w;
        const float v = xp[at];
        if (v > m || isnan(v) || idx < 0) {
          m = v;
          idx = static_cast<int32_t>(at);
        }
      }
    }
    y[e] = m;
    index[e] = idx;
  }
}

// dx[e] = sum of dy over the outputs whose index is e, in output order (the CPU's += order).
__global__ void max_pool_backward_kernel(Pool2dGeometry g, const float* dy, const int32_t* index, float* dx,
                                         int64_t total) {
  LOWBIT_GRID_LOOP(e, total) {
    const int64_t w = e % g.in_w, h = (e / g.in_w) % g.in_h, p = e / (g.in_w * g.in_h);
    const int64_t out_sz = g.out_h * g.out_w, at = h * g.in_w + w;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, g.stride_h, g.pad_h, g.dilation_h * (g.kernel_h - 1) + 1, g.out_h, oh0, oh1);
    covering(w, g.stride_w, g.pad_w, g.dilation_w * (g.kernel_w - 1) + 1, g.out_w, ow0, ow1);
    const int32_t* ip = index + p * out_sz;
    const float* gp = dy + p * out_sz;
    float acc = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = oh * g.out_w + ow;
        if (ip[o] == at) acc += gp[o];
      }
    dx[e] = acc;
  }
}

// Rows clipped to the input, columns tap by tap (dilation_w as the CPU's column table),
// summed in float row by row; the divisor is row factor times column factor.
__global__ void avg_pool_kernel(Pool2dGeometry g, bool include_pad, const float* x, float* y, int64_t total) {
  LOWBIT_GRID_LOOP(e, total) {
    const int64_t ow = e % g.out_w, oh = (e / g.out_w) % g.out_h, p = e / (g.out_w * g.out_h);
    const float* xp = x + p * g.in_h * g.in_w;
    int64_t hlo, hhi, wlo, whi;
    const float rd = avg_divisor(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h, include_pad, hlo, hhi);
    const float cd = avg_divisor(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w, include_pad, wlo, whi);
    float acc = 0.0f;
    for (int64_t h = hlo; h < hhi; ++h)
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t w = ow * g.stride_w + j * g.dilation_w - g.pad_w;
        if (w >= 0 && w < g.in_w) acc += xp[h * g.in_w + w];
      }
    const float div = rd * cd;
    y[e] = div > 0 ? acc / div : 0.0f;
  }
}

// dx[e] = sum over the windows holding e of dy / divisor: by output row, then by column tap
// (the CPU's scatter order for one element).
__global__ void avg_pool_backward_kernel(Pool2dGeometry g, bool include_pad, const float* dy, float* dx,
                                         int64_t total) {
  LOWBIT_GRID_LOOP(e, total) {
    const int64_t w = e % g.in_w, h = (e / g.in_w) % g.in_h, p = e / (g.in_w * g.in_h);
    const float* gp = dy + p * g.out_h * g.out_w;
    int64_t oh0, oh1, lo, hi;
    covering(h, g.stride_h, g.pad_h, g.kernel_h, g.out_h, oh0, oh1);
    float acc = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const float rd = avg_divisor(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h, include_pad, lo, hi);
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t t = w + g.pad_w - j * g.dilation_w;
        if (t < 0 || t % g.stride_w != 0) continue;
        const int64_t ow = t / g.stride_w;
        if (ow >= g.out_w) continue;
        const float div = rd * avg_divisor(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w, include_pad, lo, hi);
        acc += div > 0 ? gp[oh * g.out_w + ow] / div : 0.0f;
      }
    }
    dx[e] = acc;
  }
}

__global__ void adaptive_avg_pool_kernel(Pool2dGeometry g, const float* x, float* y, int64_t total) {
  LOWBIT_GRID_LOOP(e, total) {
    const int64_t ow = e % g.out_w, oh = (e / g.out_w) % g.out_h, p = e / (g.out_w * g.out_h);
    const float* xp = x + p * g.in_h * g.in_w;
    const int64_t h0 = bin_lo(oh, g.in_h, g.out_h), h1 = bin_hi(oh, g.in_h, g.out_h);
    const int64_t w0 = bin_lo(ow, g.in_w, g.out_w), w1 = bin_hi(ow, g.in_w, g.out_w);
    double acc = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) acc += xp[h * g.in_w + w];
    y[e] = static_cast<float>(acc / static_cast<double>((h1 - h0) * (w1 - w0)));
  }
}

// The bins holding position i along one axis, [lo, hi). Bins are monotone in both ends, so
// they form a run: bin floor(i*out/in) holds i; walk down, then up, from it.
__device__ void bins_holding(int64_t i, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  int64_t o = i * out / in;
  while (o > 0 && bin_hi(o - 1, in, out) > i) --o;
  lo = o;
  while (o < out && bin_lo(o, in, out) <= i) ++o;
  hi = o;
}

__global__ void adaptive_avg_pool_backward_kernel(Pool2dGeometry g, const float* dy, float* dx, int64_t total) {
  LOWBIT_GRID_LOOP(e, total) {
    const int64_t w = e % g.in_w, h = (e / g.in_w) % g.in_h, p = e / (g.in_w * g.in_h);
    const float* gp = dy + p * g.out_h * g.out_w;
    int64_t oh0, oh1, ow0, ow1;
    bins_holding(h, g.in_h, g.out_h, oh0, oh1);
    bins_holding(w, g.in_w, g.out_w, ow0, ow1);
    float acc = 0.0f;
    // The CPU's share dy / bin size, added in output order.
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t hn = bin_hi(oh, g.in_h, g.out_h) - bin_lo(oh, g.in_h, g.out_h);
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t wn = bin_hi(ow, g.in_w, g.out_w) - bin_lo(ow, g.in_w, g.out_w);
        acc += gp[oh * g.out_w + ow] / static_cast<float>(hn * wn);
      }
    }
    dx[e] = acc;
  }
}

#undef LOWBIT_GRID_LOOP

// Launches `kernel` over `total` elements on the stream of `out`'s device.
template <class Kernel, class... Args>
void launch(const Tensor& out, int64_t total, Kernel kernel, Args... args) {
  if (total == 0) return;
  LOWBIT_CHECK(out.device().is_cuda(), "cuda pooling", "expects CUDA tensors, got one on ", out.device().str());
  const int dev = out.device().index;
  DeviceGuard guard(dev);
  kernel<<<blocks_for(total), kThreads, 0, stream(dev)>>>(args..., total);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void max_pool2d(const Pool2dGeometry& g, const Tensor& x, Tensor& y, Tensor& index) {
  launch(y, y.numel(), max_pool_kernel, g, x.data<float>(), y.data<float>(), index.data<int32_t>());
}

void max_pool2d_backward(const Pool2dGeometry& g, const Tensor& dy, const Tensor& index, Tensor& dx) {
  launch(dx, dx.numel(), max_pool_backward_kernel, g, dy.data<float>(), index.data<int32_t>(), dx.data<float>());
}

void avg_pool2d(const Pool2dGeometry& g, bool count_include_pad, const Tensor& x, Tensor& y) {
  launch(y, y.numel(), avg_pool_kernel, g, count_include_pad, x.data<float>(), y.data<float>());
}

void avg_pool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const Tensor& dy, Tensor& dx) {
  launch(dx, dx.numel(), avg_pool_backward_kernel, g, count_include_pad, dy.data<float>(), dx.data<float>());
}

void adaptive_avg_pool2d(const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  launch(y, y.numel(), adaptive_avg_pool_kernel, g, x.data<float>(), y.data<float>());
}

void adaptive_avg_pool2d_backward(const Pool2dGeometry& g, const Tensor& dy, Tensor& dx) {
  launch(dx, dx.numel(), adaptive_avg_pool_backward_kernel, g, dy.data<float>(), dx.data<float>());
}

}  // namespace lowbit::cuda
