// CUDA class-index losses: fused cross entropy forward/backward and NLL, one warp per sample
// over [N, C, inner] views; formulas as in core/kernels/loss.h and core/cpu/loss.cpp.
#include <cmath>

#include "../kernels/dispatch_width.h"
#include "../kernels/loss.h"
#include "common.cuh"
#include "runtime.h"
#include "warp.cuh"

namespace lowbit::cuda {
namespace {

struct Layout {
  int64_t n = 1, c = 1, inner = 1;
  __host__ __device__ int64_t samples() const { return n * inner; }
  __device__ int64_t base(int64_t s) const { return (s / inner) * c * inner + s % inner; }
};

Layout layout_of(const Shape& s) {
  Layout l;
  l.n = s[0];
  l.c = s[1];
  for (size_t i = 2; i < s.size(); ++i) l.inner *= s[i];
  return l;
}

template <class T>
__global__ void cross_entropy_kernel(const float* x, const T* target, Layout l, int64_t ignore, float eps,
                                     float* loss, float* lse) {
  const int64_t s = warp_row();
  if (s >= l.samples()) return;
  const int64_t t = static_cast<int64_t>(target[s]);
  if (t == ignore) {
    if (lane() == 0) loss[s] = lse[s] = 0.0f;
    return;
  }
  const float* xs = x + l.base(s);
  const int64_t st = l.inner;
  float m = -INFINITY;
  for (int64_t c = lane(); c < l.c; c += kWarp) m = fmaxf(m, xs[c * st]);
  m = warp_max(m);
  double sum_exp = 0, sum_x = 0;
  for (int64_t c = lane(); c < l.c; c += kWarp) {
    sum_exp += exp(static_cast<double>(xs[c * st] - m));
    sum_x += xs[c * st];
  }
  sum_exp = warp_sum(sum_exp);
  sum_x = warp_sum(sum_x);
  if (lane() == 0) {
    const double z = m + ::log(sum_exp);
    lse[s] = static_cast<float>(z);
    double v = (1.0 - eps) * (z - xs[t * st]);
    if (eps != 0) v += eps * (z - sum_x / static_cast<double>(l.c));
    loss[s] = static_cast<float>(v);
  }
}

// dx = g * (exp(x - lse) - (1 - eps) onehot(t) - eps / C), 0 where t is ignored.
template <class T>
__global__ void cross_entropy_backward_kernel(const float* g, bool per_sample, const float* x, const T* target,
                                              const float* lse, Layout l, int64_t ignore, float eps, float* dx) {
  const int64_t s = warp_row();
  if (s >= l.samples()) return;
  const int64_t t = static_cast<int64_t>(target[s]);
  const int64_t b = l.base(s), st = l.inner;
  if (t == ignore) {
    for (int64_t c = lane(); c < l.c; c += kWarp) dx[b + c * st] = 0.0f;
    return;
  }
  const float gs = g[per_sample ? s : 0], z = lse[s];
  const float off = eps / static_cast<float>(l.c), hit = 1.0f - eps;
  for (int64_t c = lane(); c < l.c; c += kWarp) {
    float d = gs * (expf(x[b + c * st] - z) - off);
    if (c == t) d -= gs * hit;
    dx[b + c * st] = d;
  }
}

template <class T>
__global__ void nll_kernel(const float* lp, const T* target, Layout l, int64_t ignore, float* loss) {
  const int64_t s = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (s >= l.samples()) return;
  const int64_t t = static_cast<int64_t>(target[s]);
  loss[s] = t == ignore ? 0.0f : -lp[l.base(s) + t * l.inner];
}

// dx was zeroed by the launcher; -g lands at each sample's target.
template <class T>
__global__ void nll_backward_kernel(const float* g, bool per_sample, const T* target, Layout l, int64_t ignore,
                                    float* dx) {
  const int64_t s = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (s >= l.samples()) return;
  const int64_t t = static_cast<int64_t>(target[s]);
  if (t != ignore) dx[l.base(s) + t * l.inner] = -g[per_sample ? s : 0];
}

}  // namespace

// The op needs the answer on the host before any kernel runs, so the targets travel to the
// host once (they are small: one integer per sample).
TargetScan scan_targets(const Tensor& target, int64_t classes, int64_t ignore_index) {
  return cpu::scan_targets(target.to(Device::cpu()), classes, ignore_index);
}

void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, float smoothing, Tensor& loss,
                   Tensor& lse) {
  const Layout l = layout_of(logits.shape());
  if (l.samples() == 0) return;
  const int dev = logits.device().index;
  DeviceGuard g(dev);
  kernels::with_index(target, [&](auto* pt) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(pt)>>;
    cross_entropy_kernel<T><<<blocks_for_rows(l.samples()), kRowsPerBlock * kWarp, 0, stream(dev)>>>(
        logits.data<float>(), pt, l, ignore_index, smoothing, loss.data<float>(), lse.data<float>());
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void cross_entropy_backward(const Tensor& dloss, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t ignore_index, float smoothing, Tensor& dx) {
  const Layout l = layout_of(logits.shape());
  if (l.samples() == 0) return;
  const int dev = logits.device().index;
  DeviceGuard g(dev);
  kernels::with_index(target, [&](auto* pt) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(pt)>>;
    cross_entropy_backward_kernel<T><<<blocks_for_rows(l.samples()), kRowsPerBlock * kWarp, 0, stream(dev)>>>(
        dloss.data<float>(), dloss.numel() != 1, logits.data<float>(), pt, lse.data<float>(), l, ignore_index,
        smoothing, dx.data<float>());
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index, Tensor& loss) {
  const Layout l = layout_of(log_probs.shape());
  if (l.samples() == 0) return;
  const int dev = log_probs.device().index;
  DeviceGuard g(dev);
  kernels::with_index(target, [&](auto* pt) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(pt)>>;
    nll_kernel<T><<<blocks_for(l.samples()), kThreads, 0, stream(dev)>>>(log_probs.data<float>(), pt, l,
                                                                         ignore_index, loss.data<float>());
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void nll_loss_backward(const Tensor& dloss, const Tensor& target, int64_t ignore_index, Tensor& dx) {
  const Layout l = layout_of(dx.shape());
  const int dev = dx.device().index;
  DeviceGuard g(dev);
  LOWBIT_CUDA_CHECK(cudaMemsetAsync(dx.raw_data(), 0, dx.nbytes(), stream(dev)));
  if (l.samples() == 0) return;
  kernels::with_index(target, [&](auto* pt) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(pt)>>;
    nll_backward_kernel<T><<<blocks_for(l.samples()), kThreads, 0, stream(dev)>>>(
        dloss.data<float>(), dloss.numel() != 1, pt, l, ignore_index, dx.data<float>());
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace lowbit::cuda
