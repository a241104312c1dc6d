// CUDA batch norm: statistics, the fused normalise + affine (+ ReLU) pass, and the fused
// backward, on x seen as [N, C, S]. Own kernels rather than cuDNN's: the interface splits
// statistics from the apply, takes the fused ReLU's output in the backward, and updates the
// running variance with the CPU's formula. Per-channel sums accumulate in double (as on the
// CPU) over fixed chunks whose partials are added in chunk order: results repeat bit for bit.
#include "../kernels/batch_norm.h"
#include "common.cuh"

namespace lowbit::cuda {
namespace {

struct Layout {
  int64_t n, c, s;
  __host__ __device__ int64_t per_channel() const { return n * s; }
};
Layout layout_of(const Tensor& x) {
  Layout l{x.size(0), x.size(1), 1};
  for (int64_t a = 2; a < x.dim(); ++a) l.s *= x.size(a);
  return l;
}

// Element m in [0, N*S) of channel c.
__device__ inline int64_t at(const Layout& l, int64_t c, int64_t m) { return ((m / l.s) * l.c + c) * l.s + m % l.s; }

const float* data_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// Chunks per channel: about 4096 elements each, at most 256 (a grid of chunks x C blocks).
constexpr int64_t kChunkElems = 4096;
int64_t chunks_for(const Layout& l) {
  const int64_t k = (l.per_channel() + kChunkElems - 1) / kChunkElems;
  return k < 1 ? 1 : (k > 256 ? 256 : k);
}

__device__ void block_sum2(double& a, double& b, double* sa, double* sb) {
  sa[threadIdx.x] = a;
  sb[threadIdx.x] = b;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      sa[threadIdx.x] += sa[threadIdx.x + s];
      sb[threadIdx.x] += sb[threadIdx.x + s];
    }
    __syncthreads();
  }
  a = sa[0];
  b = sb[0];
}

// Two sums per (chunk, channel) block into part[(c * chunks + chunk) * 2 + {0, 1}]:
//   stats (dy == nullptr): sum(x - pivot), sum((x - pivot)^2), pivot = the channel's first element;
//   backward: sum(g), sum(g * (x - mean)) with g = dy, gated by relu_out > 0 when given.
__global__ void channel_sums_kernel(Layout l, const float* x, const float* dy, const float* mean,
                                    const float* relu_out, double* part) {
  __shared__ double sa[kThreads], sb[kThreads];
  const int64_t c = blockIdx.y, chunks = gridDim.x, m_total = l.per_channel();
  const int64_t per = (m_total + chunks - 1) / chunks;
  const int64_t begin = blockIdx.x * per, end = begin + per < m_total ? begin + per : m_total;
  double a = 0, b = 0;
  if (!dy) {
    const double pivot = x[c * l.s];
    for (int64_t m = begin + threadIdx.x; m < end; m += kThreads) {
      const double d = static_cast<double>(x[at(l, c, m)]) - pivot;
      a += d;
      b += d * d;
    }
  } else {
    const float mu = mean[c];
    for (int64_t m = begin + threadIdx.x; m < end; m += kThreads) {
      const int64_t i = at(l, c, m);
      const float g = relu_out && !(relu_out[i] > 0.0f) ? 0.0f : dy[i];
      a += g;
      b += static_cast<double>(g) * static_cast<double>(x[i] - mu);
    }
  }
  block_sum2(a, b, sa, sb);
  if (threadIdx.x == 0) {
    part[(c * chunks + blockIdx.x) * 2] = a;
    part[(c * chunks + blockIdx.x) * 2 + 1] = b;
  }
}

// One thread per channel: the CPU's formulas from the summed partials, with an FMA exactly
// where GCC contracts them on the CPU (-O3 -march=native on x86-64 with FMA).
__global__ void stats_finish_kernel(Layout l, int64_t chunks, const float* x, const double* part, double eps,
                                    double momentum, float* running_mean, float* running_var, float* mean,
                                    float* invstd) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= l.c) return;
  double s1 = 0, s2 = 0;
  for (int64_t k = 0; k < chunks; ++k) {
    s1 += part[(c * chunks + k) * 2];
    s2 += part[(c * chunks + k) * 2 + 1];
  }
  const double m = static_cast<double>(l.per_channel());
  const double dm = s1 / m;
  const double var = fmax(fma(-dm, dm, s2 / m), 0.0);
  const double mu = static_cast<double>(x[c * l.s]) + dm;
  mean[c] = static_cast<float>(mu);
  invstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
  if (running_mean)
    running_mean[c] = static_cast<float>(fma(1 - momentum, static_cast<double>(running_mean[c]), momentum * mu));
  if (running_var)
    running_var[c] =
        static_cast<float>(fma(1 - momentum, static_cast<double>(running_var[c]), momentum * var * m / (m - 1)));
}

// Per channel from the sums: dweight, dbias, and the dx coefficients coef[c] = {k, t, u} of
// dx = k g - t (x - mean) - u (t = u = 0 in eval).
__global__ void backward_finish_kernel(Layout l, int64_t chunks, bool training, const double* part,
                                       const float* invstd, const float* weight, float* dweight, float* dbias,
                                       float* coef) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= l.c) return;
  double sum_dy = 0, sum_dyxmu = 0;
  if (part)
    for (int64_t k = 0; k < chunks; ++k) {
      sum_dy += part[(c * chunks + k) * 2];
      sum_dyxmu += part[(c * chunks + k) * 2 + 1];
    }
  const float pi = invstd[c];
  if (dweight) dweight[c] = static_cast<float>(sum_dyxmu * pi);
  if (dbias) dbias[c] = static_cast<float>(sum_dy);
  if (!coef) return;
  const double m = static_cast<double>(l.per_channel());
  const double kc = (weight ? weight[c] : 1.0) * static_cast<double>(pi);
  coef[c * 3] = static_cast<float>(kc);
  coef[c * 3 + 1] = training ? static_cast<float>(kc * pi * pi * sum_dyxmu / m) : 0.0f;
  coef[c * 3 + 2] = training ? static_cast<float>(kc * sum_dy / m) : 0.0f;
}

// y = (x - mean) * (weight * invstd) + bias, then max(y, 0) when relu; the last step is one
// fused multiply-add, as GCC contracts the CPU loop on FMA machines (-march=native).
__global__ void apply_kernel(Layout l, const float* x, const float* mean, const float* invstd, const float* weight,
                             const float* bias, bool relu, float* y, int64_t total) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{blockDim.x} * gridDim.x) {
    const int64_t c = (i / l.s) % l.c;
    const float scale = __fmul_rn(weight ? weight[c] : 1.0f, invstd[c]);
    const float v = __fmaf_rn(x[i] - mean[c], scale, bias ? bias[c] : 0.0f);
    y[i] = relu ? fmaxf(v, 0.0f) : v;
  }
}

// dx = k g - t (x - mean) - u, as GCC contracts the CPU loop: fma(k, g, -(t (x - mean))) - u.
__global__ void dx_kernel(Layout l, const float* dy, const float* x, const float* mean, const float* relu_out,
                          const float* coef, float* dx, int64_t total) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{blockDim.x} * gridDim.x) {
    const int64_t c = (i / l.s) % l.c;
    const float g = relu_out && !(relu_out[i] > 0.0f) ? 0.0f : dy[i];
    dx[i] = __fsub_rn(__fmaf_rn(coef[c * 3], g, -__fmul_rn(coef[c * 3 + 1], x[i] - mean[c])), coef[c * 3 + 2]);
  }
}

int device_of(const Tensor& t) {
  LOWBIT_CHECK(t.device().is_cuda(), "cuda batch_norm", "expects CUDA tensors, got one on ", t.device().str());
  return t.device().index;
}

// Scratch of `count` doubles (DType has no f64: bytes from the caching allocator).
Tensor doubles(int dev, int64_t count) { return Tensor::empty({count * 8}, DType::u8, Device::cuda(dev)); }

// The per-(channel, chunk) partial sums of x (stats) or of the backward's two products.
void channel_sums(const Layout& l, int64_t chunks, int dev, const float* x, const float* dy, const float* mean,
                  const float* relu_out, double* part) {
  LOWBIT_CHECK(l.c <= 65535, "cuda batch_norm", l.c, " channels exceed the grid's 65535");
  const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(l.c));
  channel_sums_kernel<<<grid, kThreads, 0, stream(dev)>>>(l, x, dy, mean, relu_out, part);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void batch_norm_stats(const Tensor& x, double eps, double momentum, Tensor& running_mean, Tensor& running_var,
                      Tensor& mean, Tensor& invstd) {
  const Layout l = layout_of(x);
  if (l.c == 0) return;
  LOWBIT_CHECK(l.per_channel() > 0, "cuda batch_norm", "statistics of an empty input ", shape_str(x.shape()));
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  const int64_t chunks = chunks_for(l);
  Tensor part = doubles(dev, l.c * chunks * 2);
  double* pp = static_cast<double*>(part.raw_data());
  channel_sums(l, chunks, dev, x.data<float>(), nullptr, nullptr, nullptr, pp);
  stats_finish_kernel<<<blocks_for(l.c), kThreads, 0, stream(dev)>>>(
      l, chunks, x.data<float>(), pp, eps, momentum, running_mean.defined() ? running_mean.data<float>() : nullptr,
      running_var.defined() ? running_var.data<float>() : nullptr, mean.data<float>(), invstd.data<float>());
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void batch_norm_apply(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                      const Tensor& bias, bool relu, Tensor& y) {
  const int64_t total = x.numel();
  if (total == 0) return;
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  apply_kernel<<<blocks_for(total), kThreads, 0, stream(dev)>>>(layout_of(x), x.data<float>(), mean.data<float>(),
                                                                invstd.data<float>(), data_or_null(weight),
                                                                data_or_null(bias), relu, y.data<float>(), total);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void batch_norm_backward(bool training, const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& weight, const Tensor& relu_out, Tensor& dx, Tensor& dweight, Tensor& dbias) {
  const Layout l = layout_of(x);
  if (l.c == 0) return;
  const int dev = device_of(x);
  DeviceGuard guard(dev);
  const float *px = x.data<float>(), *pg = dy.data<float>(), *pm = mean.data<float>(), *pr = data_or_null(relu_out);
  const bool need_sums = dweight.defined() || dbias.defined() || (training && dx.defined());
  const int64_t chunks = chunks_for(l);
  Tensor part, coef;
  double* pp = nullptr;
  if (need_sums && l.per_channel() > 0) {
    part = doubles(dev, l.c * chunks * 2);
    pp = static_cast<double*>(part.raw_data());
    channel_sums(l, chunks, dev, px, pg, pm, pr, pp);
  }
  if (dx.defined()) coef = Tensor::empty({l.c * 3}, DType::f32, Device::cuda(dev));
  backward_finish_kernel<<<blocks_for(l.c), kThreads, 0, stream(dev)>>>(
      l, chunks, training, pp, invstd.data<float>(), data_or_null(weight),
      dweight.defined() ? dweight.data<float>() : nullptr, dbias.defined() ? dbias.data<float>() : nullptr,
      coef.defined() ? coef.data<float>() : nullptr);
  LOWBIT_CUDA_LAUNCH_CHECK();
  const int64_t total = x.numel();
  if (!dx.defined() || total == 0) return;
  dx_kernel<<<blocks_for(total), kThreads, 0, stream(dev)>>>(l, pg, px, pm, pr, coef.data<float>(), dx.data<float>(),
                                                             total);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace lowbit::cuda
