// CUDA softmax and log_softmax, forward and backward, over [outer, n, inner] views: one warp
// per slice of n elements (`inner` apart), sums in double as on the CPU.
#include <cmath>

#include "../kernels/softmax.h"
#include "common.cuh"
#include "warp.cuh"

namespace lowbit::cuda {
namespace {

struct View {
  int64_t outer = 1, n = 1, inner = 1;
  __device__ int64_t base(int64_t slice) const { return (slice / inner) * n * inner + slice % inner; }
};

View view_of(const Shape& s, int64_t axis) {
  View v;
  if (s.empty()) return v;
  for (int64_t i = 0; i < axis; ++i) v.outer *= s[i];
  v.n = s[axis];
  for (size_t i = axis + 1; i < s.size(); ++i) v.inner *= s[i];
  return v;
}

__global__ void softmax_kernel(bool log, const float* x, float* y, View v) {
  const int64_t slice = warp_row();
  if (slice >= v.outer * v.inner) return;  // whole warps leave together
  const float* xs = x + v.base(slice);
  float* ys = y + v.base(slice);
  const int64_t st = v.inner;
  float m = -INFINITY;
  for (int64_t i = lane(); i < v.n; i += kWarp) m = fmaxf(m, xs[i * st]);
  m = warp_max(m);
  double s = 0;
  for (int64_t i = lane(); i < v.n; i += kWarp) s += expf(xs[i * st] - m);
  s = warp_sum(s);
  if (log) {
    // (x - m) - log(s), not x - (m + log(s)), as on the CPU.
    const float ls = static_cast<float>(::log(s));
    for (int64_t i = lane(); i < v.n; i += kWarp) ys[i * st] = (xs[i * st] - m) - ls;
  } else {
    const float r = static_cast<float>(1.0 / s);
    for (int64_t i = lane(); i < v.n; i += kWarp) ys[i * st] = expf(xs[i * st] - m) * r;
  }
}

// softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy).
__global__ void softmax_backward_kernel(bool log, const float* dy, const float* y, float* dx, View v) {
  const int64_t slice = warp_row();
  if (slice >= v.outer * v.inner) return;
  const int64_t b = v.base(slice), st = v.inner;
  double s = 0;
  for (int64_t i = lane(); i < v.n; i += kWarp)
    s += log ? static_cast<double>(dy[b + i * st]) : static_cast<double>(dy[b + i * st]) * y[b + i * st];
  const float sf = static_cast<float>(warp_sum(s));
  for (int64_t i = lane(); i < v.n; i += kWarp) {
    const int64_t k = b + i * st;
    dx[k] = log ? dy[k] - expf(y[k]) * sf : y[k] * (dy[k] - sf);
  }
}

}  // namespace

void softmax(bool log, const Tensor& x, int64_t axis, Tensor& y) {
  const View v = view_of(x.shape(), axis);
  const int64_t slices = v.outer * v.inner;
  if (slices == 0 || v.n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  softmax_kernel<<<blocks_for_rows(slices), kRowsPerBlock * kWarp, 0, stream(dev)>>>(log, x.data<float>(),
                                                                                     y.data<float>(), v);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void softmax_backward(bool log, const Tensor& dy, const Tensor& y, int64_t axis, Tensor& dx) {
  const View v = view_of(y.shape(), axis);
  const int64_t slices = v.outer * v.inner;
  if (slices == 0 || v.n == 0) return;
  const int dev = y.device().index;
  DeviceGuard g(dev);
  softmax_backward_kernel<<<blocks_for_rows(slices), kRowsPerBlock * kWarp, 0, stream(dev)>>>(
      log, dy.data<float>(), y.data<float>(), dx.data<float>(), v);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace lowbit::cuda
