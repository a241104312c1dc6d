// CUDA reductions: sum/mean/max/min/logsumexp over any axes (with argmax/argmin), var, and
// the scatter of max/min gradients. One block per output element; sums accumulate in double
// in an order fixed by the sizes (block size and tree), so results repeat bit for bit.
#include <cmath>
#include <vector>

#include "../kernels/reduce.h"
#include "common.cuh"

namespace lowbit::cuda {
namespace {

// x viewed as kept and reduced axes (adjacent axes of one kind merged, size-1 axes dropped).
struct Plan {
  int nk = 0, nr = 0;
  int64_t kd[kMaxDims], ks[kMaxDims], rd[kMaxDims], rs[kMaxDims];
  int64_t n_out = 1, n_red = 1;

  __device__ int64_t keep_offset(int64_t o) const { return offset(o, nk, kd, ks); }
  __device__ int64_t red_offset(int64_t r) const { return offset(r, nr, rd, rs); }
  __device__ static int64_t offset(int64_t flat, int n, const int64_t* dims, const int64_t* strides) {
    int64_t off = 0;
    for (int d = n - 1; d >= 0; --d) {
      off += (flat % dims[d]) * strides[d];
      flat /= dims[d];
    }
    return off;
  }
};

Plan make_plan(const Shape& s, const std::vector<int64_t>& axes) {
  Plan p;
  const Shape st = contiguous_strides(s);
  std::vector<bool> red(s.size(), false);
  for (int64_t a : axes) red[static_cast<size_t>(a)] = true;
  int last = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 1) continue;
    const int kind = red[i] ? 1 : 0;
    int& n = kind ? p.nr : p.nk;
    int64_t* dims = kind ? p.rd : p.kd;
    int64_t* strides = kind ? p.rs : p.ks;
    if (kind == last) {
      dims[n - 1] *= s[i];
      strides[n - 1] = st[i];
    } else {
      LOWBIT_CHECK(n < kMaxDims, "cuda reduce", "shape ", shape_str(s), " has too many alternating axes");
      dims[n] = s[i];
      strides[n] = st[i];
      ++n;
    }
    last = kind;
  }
  for (int d = 0; d < p.nk; ++d) p.n_out *= p.kd[d];
  for (int d = 0; d < p.nr; ++d) p.n_red *= p.rd[d];
  return p;
}

// ---- block-wide combination (kThreads threads) ----

__device__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

// The running extreme: NaN wins (the first NaN, as in PyTorch), otherwise the extreme value
// with the smallest index. The order is total, so the tree may combine in any order.
struct Best {
  float v;
  int64_t arg;
  bool nan, any;
};

__device__ Best better(const Best& a, const Best& b, bool is_max) {
  if (!a.any) return b;
  if (!b.any) return a;
  if (a.nan || b.nan) {
    if (a.nan && b.nan) return a.arg < b.arg ? a : b;
    return a.nan ? a : b;
  }
  if (a.v == b.v) return a.arg < b.arg ? a : b;
  return (is_max ? a.v > b.v : a.v < b.v) ? a : b;
}

__device__ Best block_best(Best v, Best* shared, bool is_max) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] = better(shared[threadIdx.x], shared[threadIdx.x + s], is_max);
    __syncthreads();
  }
  const Best total = shared[0];
  __syncthreads();
  return total;
}

__device__ Best slice_best(const float* base, const Plan& p, bool is_max, Best* shared) {
  Best b{0.0f, 0, false, false};
  for (int64_t r = threadIdx.x; r < p.n_red; r += kThreads) {
    const float v = base[p.red_offset(r)];
    b = better(b, Best{v, r, v != v, true}, is_max);
  }
  return block_best(b, shared, is_max);
}

// ---- kernels ----

__global__ void reduce_kernel(ReduceOp op, const float* x, Plan p, float* out, int64_t* index) {
  __shared__ double sums[kThreads];
  __shared__ Best bests[kThreads];
  for (int64_t o = blockIdx.x; o < p.n_out; o += gridDim.x) {
    const float* base = x + p.keep_offset(o);
    if (op == ReduceOp::sum || op == ReduceOp::mean) {
      double s = 0;
      for (int64_t r = threadIdx.x; r < p.n_red; r += kThreads) s += base[p.red_offset(r)];
      s = block_sum(s, sums);
      // 1/0 = inf makes the mean of an empty slice NaN, as in PyTorch.
      if (threadIdx.x == 0) out[o] = static_cast<float>(op == ReduceOp::mean ? s * (1.0 / p.n_red) : s);
    } else if (op == ReduceOp::max || op == ReduceOp::min) {
      const bool is_max = op == ReduceOp::max;
      const Best b = slice_best(base, p, is_max, bests);
      if (threadIdx.x == 0) {
        out[o] = b.any ? b.v : (is_max ? -INFINITY : INFINITY);
        if (index) index[o] = b.arg;
      }
    } else {  // logsumexp, shifted by the slice maximum unless it is infinite
      const Best m = slice_best(base, p, true, bests);
      const double center = m.any && isfinite(m.v) ? m.v : 0.0;
      double s = 0;
      for (int64_t r = threadIdx.x; r < p.n_red; r += kThreads) s += exp(base[p.red_offset(r)] - center);
      s = block_sum(s, sums);
      if (threadIdx.x == 0) out[o] = static_cast<float>(log(s) + center);
    }
  }
}

// var = sum((x - mean)^2) / max(0, n - correction), two passes (no cancellation).
__global__ void var_kernel(const float* x, Plan p, int64_t correction, float* out, float* mean_out) {
  __shared__ double sums[kThreads];
  for (int64_t o = blockIdx.x; o < p.n_out; o += gridDim.x) {
    const float* base = x + p.keep_offset(o);
    double s = 0;
    for (int64_t r = threadIdx.x; r < p.n_red; r += kThreads) s += base[p.red_offset(r)];
    const double mu = block_sum(s, sums) / static_cast<double>(p.n_red);
    double m2 = 0;
    for (int64_t r = threadIdx.x; r < p.n_red; r += kThreads) {
      const double d = base[p.red_offset(r)] - mu;
      m2 += d * d;
    }
    m2 = block_sum(m2, sums);
    if (threadIdx.x == 0) {
      const int64_t div = p.n_red - correction;
      out[o] = static_cast<float>(m2 / static_cast<double>(div > 0 ? div : 0));
      if (mean_out) mean_out[o] = static_cast<float>(mu);
    }
  }
}

__global__ void scatter_kernel(const float* dy, const int64_t* index, Plan p, float* dx) {
  for (int64_t o = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; o < p.n_out; o += int64_t{blockDim.x} * gridDim.x)
    dx[p.keep_offset(o) + p.red_offset(index[o])] = dy[o];
}

// One block per output, capped (the kernel loops over the rest).
unsigned grid_for(int64_t n_out) {
  return static_cast<unsigned>(n_out < 1 ? 1 : (n_out > 65535 * 16 ? 65535 * 16 : n_out));
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, Tensor& out, Tensor* index) {
  const Plan p = make_plan(x.shape(), axes);
  if (p.n_out == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  int64_t* pi = index && index->defined() ? index->data<int64_t>() : nullptr;
  reduce_kernel<<<grid_for(p.n_out), kThreads, 0, stream(dev)>>>(op, x.data<float>(), p, out.data<float>(), pi);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void var(const Tensor& x, const std::vector<int64_t>& axes, int64_t correction, Tensor& out, Tensor* mean) {
  const Plan p = make_plan(x.shape(), axes);
  if (p.n_out == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  float* pm = mean && mean->defined() ? mean->data<float>() : nullptr;
  var_kernel<<<grid_for(p.n_out), kThreads, 0, stream(dev)>>>(x.data<float>(), p, correction, out.data<float>(), pm);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void reduce_scatter(const Tensor& dy, const Tensor& index, const std::vector<int64_t>& axes, Tensor& dx) {
  const Plan p = make_plan(dx.shape(), axes);
  const int dev = dx.device().index;
  DeviceGuard g(dev);
  LOWBIT_CUDA_CHECK(cudaMemsetAsync(dx.raw_data(), 0, dx.nbytes(), stream(dev)));
  if (p.n_out == 0) return;
  scatter_kernel<<<blocks_for(p.n_out), kThreads, 0, stream(dev)>>>(dy.data<float>(), index.data<int64_t>(), p,
                                                                     dx.data<float>());
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace lowbit::cuda
