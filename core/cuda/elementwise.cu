// CUDA element-wise kernels: broadcasting binary ops, unary ops and their derivatives,
// where, min/max gradients, cast, fill and copy. Same formulas as core/cpu/elementwise.cpp.
#include "../kernels/elementwise.h"
#include "common.cuh"

namespace lowbit::cuda {
namespace {

#define LOWBIT_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{blockDim.x} * gridDim.x)

// ---- kernels ----

template <class T, class R>
__global__ void binary_kernel(BinaryOp op, const T* a, Indexer ia, const T* b, Indexer ib, R* out, int64_t n) {
  LOWBIT_GRID_LOOP(i, n) {
    const T x = a[ia(i)], y = b[ib(i)];
    R r;
    switch (op) {
      case BinaryOp::add: r = static_cast<R>(x + y); break;
      case BinaryOp::sub: r = static_cast<R>(x - y); break;
      case BinaryOp::mul: r = static_cast<R>(x * y); break;
      case BinaryOp::div:
        // Integer division by zero defined as 0, as on the CPU.
        if constexpr (std::is_floating_point_v<T>) r = static_cast<R>(x / y);
        else r = static_cast<R>(y == 0 ? T(0) : static_cast<T>(x / y));
        break;
      case BinaryOp::minimum: r = static_cast<R>(y < x ? y : x); break;
      case BinaryOp::maximum: r = static_cast<R>(y > x ? y : x); break;
      case BinaryOp::eq: r = static_cast<R>(x == y); break;
      case BinaryOp::ne: r = static_cast<R>(x != y); break;
      case BinaryOp::lt: r = static_cast<R>(x < y); break;
      case BinaryOp::le: r = static_cast<R>(x <= y); break;
      case BinaryOp::gt: r = static_cast<R>(x > y); break;
      default: r = static_cast<R>(x >= y); break;
    }
    out[i] = r;
  }
}

__device__ float unary_value(UnaryOp op, float v, float p0, float p1) {
  switch (op) {
    case UnaryOp::neg: return -v;
    case UnaryOp::pow: return p0 == 2.0f ? v * v : powf(v, p0);
    case UnaryOp::exp: return expf(v);
    case UnaryOp::log: return logf(v);
    case UnaryOp::sqrt: return sqrtf(v);
    case UnaryOp::abs: return fabsf(v);
    case UnaryOp::sign: return static_cast<float>((v > 0) - (v < 0));
    case UnaryOp::tanh: return tanhf(v);
    case UnaryOp::sigmoid: {
      if (v >= 0) return 1.0f / (1.0f + expf(-v));
      const float e = expf(v);
      return e / (1.0f + e);
    }
    case UnaryOp::relu: return v > 0 ? v : 0.0f;
    case UnaryOp::clamp: return v < p0 ? p0 : (v > p1 ? p1 : v);
    case UnaryOp::round: return nearbyintf(v);  // half to even, as std::nearbyint
    case UnaryOp::floor: return floorf(v);
    case UnaryOp::ceil: return ceilf(v);
  }
  return v;
}

__global__ void unary_kernel(UnaryOp op, const float* x, float* y, int64_t n, float p0, float p1) {
  LOWBIT_GRID_LOOP(i, n) y[i] = unary_value(op, x[i], p0, p1);
}

// dx = dy * op'(x), reading x or y = op(x) as the formula needs (see core/cpu/elementwise.cpp).
__global__ void unary_backward_kernel(UnaryOp op, const float* dy, const float* x, const float* y, float* dx,
                                      int64_t n, float p0, float p1) {
  LOWBIT_GRID_LOOP(i, n) {
    const float g = dy[i];
    float r = 0.0f;
    switch (op) {
      case UnaryOp::neg: r = -g; break;
      case UnaryOp::pow: r = g * p0 * powf(x[i], p0 - 1.0f); break;
      case UnaryOp::exp: r = g * y[i]; break;
      case UnaryOp::log: r = g / x[i]; break;
      case UnaryOp::sqrt: r = g / (2.0f * y[i]); break;
      case UnaryOp::abs: r = x[i] > 0 ? g : (x[i] < 0 ? -g : 0.0f); break;
      case UnaryOp::tanh: r = g * (1.0f - y[i] * y[i]); break;
      case UnaryOp::sigmoid: r = g * y[i] * (1.0f - y[i]); break;
      case UnaryOp::relu: r = x[i] > 0 ? g : 0.0f; break;
      case UnaryOp::clamp: r = x[i] >= p0 && x[i] <= p1 ? g : 0.0f; break;
      default: r = 0.0f; break;  // sign, round, floor, ceil: zero almost everywhere
    }
    dx[i] = r;
  }
}

template <class T>
__global__ void where_kernel(const uint8_t* c, Indexer ic, const T* a, Indexer ia, const T* b, Indexer ib, T* out,
                             int64_t n) {
  LOWBIT_GRID_LOOP(i, n) out[i] = c[ic(i)] ? a[ia(i)] : b[ib(i)];
}

// Ties split the gradient in halves, as on the CPU.
__global__ void minmax_backward_kernel(bool is_max, const float* dy, const float* a, Indexer ia, const float* b,
                                       Indexer ib, float* da, float* db, int64_t n) {
  LOWBIT_GRID_LOOP(i, n) {
    const float x = a[ia(i)], y = b[ib(i)], g = dy[i];
    const bool a_wins = is_max ? x > y : x < y;
    const bool tie = x == y;
    da[i] = tie ? 0.5f * g : (a_wins ? g : 0.0f);
    db[i] = tie ? 0.5f * g : (a_wins ? 0.0f : g);
  }
}

template <class S, class D>
__global__ void cast_kernel(const S* x, D* y, int64_t n) {
  LOWBIT_GRID_LOOP(i, n) y[i] = static_cast<D>(x[i]);
}

template <class T>
__global__ void fill_kernel(T* p, T v, int64_t n) {
  LOWBIT_GRID_LOOP(i, n) p[i] = v;
}

#undef LOWBIT_GRID_LOOP

// ---- launchers ----

template <class F>
void visit(DType t, F&& f) {
  visit_dtype(t, std::forward<F>(f));
}

int dev_of(const Tensor& t) { return t.device().index; }

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard g(dev_of(out));
  const Indexer ia = make_indexer(out.shape(), a.shape()), ib = make_indexer(out.shape(), b.shape());
  visit(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    if (is_comparison(op))
      binary_kernel<T, uint8_t><<<blocks_for(n), kThreads, 0, stream(dev_of(out))>>>(
          op, pa, ia, pb, ib, static_cast<uint8_t*>(out.raw_data()), n);
    else
      binary_kernel<T, T><<<blocks_for(n), kThreads, 0, stream(dev_of(out))>>>(op, pa, ia, pb, ib,
                                                                               static_cast<T*>(out.raw_data()), n);
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void unary(UnaryOp op, const Tensor& x, Tensor& y, float p0, float p1) {
  const int64_t n = x.numel();
  if (n == 0) return;
  DeviceGuard g(dev_of(x));
  unary_kernel<<<blocks_for(n), kThreads, 0, stream(dev_of(x))>>>(op, x.data<float>(), y.data<float>(), n, p0, p1);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void unary_backward(UnaryOp op, const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx, float p0, float p1) {
  const int64_t n = dy.numel();
  if (n == 0) return;
  DeviceGuard g(dev_of(dy));
  // Either x or y may be undefined when the formula does not read it.
  const float* px = x.defined() ? x.data<float>() : nullptr;
  const float* py = y.defined() ? y.data<float>() : nullptr;
  unary_backward_kernel<<<blocks_for(n), kThreads, 0, stream(dev_of(dy))>>>(op, dy.data<float>(), px, py,
                                                                             dx.data<float>(), n, p0, p1);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  LOWBIT_CHECK(cond.dtype() == DType::u8, "where", "condition must be u8 (a comparison result), got ",
               dtype_name(cond.dtype()));
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard g(dev_of(out));
  const Indexer ic = make_indexer(out.shape(), cond.shape());
  const Indexer ia = make_indexer(out.shape(), a.shape()), ib = make_indexer(out.shape(), b.shape());
  visit(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    where_kernel<T><<<blocks_for(n), kThreads, 0, stream(dev_of(out))>>>(
        cond.data<uint8_t>(), ic, static_cast<const T*>(a.raw_data()), ia, static_cast<const T*>(b.raw_data()), ib,
        static_cast<T*>(out.raw_data()), n);
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void minmax_backward(bool is_max, const Tensor& dy, const Tensor& a, const Tensor& b, Tensor& da, Tensor& db) {
  const int64_t n = dy.numel();
  if (n == 0) return;
  DeviceGuard g(dev_of(dy));
  const Indexer ia = make_indexer(dy.shape(), a.shape()), ib = make_indexer(dy.shape(), b.shape());
  minmax_backward_kernel<<<blocks_for(n), kThreads, 0, stream(dev_of(dy))>>>(
      is_max, dy.data<float>(), a.data<float>(), ia, b.data<float>(), ib, da.data<float>(), db.data<float>(), n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void cast(const Tensor& x, Tensor& y) {
  const int64_t n = x.numel();
  if (n == 0) return;
  DeviceGuard g(dev_of(x));
  visit(x.dtype(), [&](auto in_tag) {
    using S = decltype(in_tag);
    visit(y.dtype(), [&](auto out_tag) {
      using D = decltype(out_tag);
      cast_kernel<S, D><<<blocks_for(n), kThreads, 0, stream(dev_of(x))>>>(static_cast<const S*>(x.raw_data()),
                                                                           static_cast<D*>(y.raw_data()), n);
    });
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void fill(Tensor& t, double value) {
  const int64_t n = t.numel();
  if (n == 0) return;
  DeviceGuard g(dev_of(t));
  visit(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<blocks_for(n), kThreads, 0, stream(dev_of(t))>>>(static_cast<T*>(t.raw_data()),
                                                                      static_cast<T>(value), n);
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void copy(const Tensor& src, Tensor& dst) {
  if (src.nbytes() == 0) return;
  DeviceGuard g(dev_of(dst));
  LOWBIT_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(), cudaMemcpyDeviceToDevice,
                                    stream(dev_of(dst))));
}

}  // namespace lowbit::cuda
