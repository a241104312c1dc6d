// CPU element-wise kernels: broadcasting binary ops, unary ops and their derivatives.
#include <cmath>
#include <cstring>

#include "../kernels/elementwise.h"
#include "broadcast.h"

namespace lowbit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per task: below this threading costs more than it saves

template <class T, class R, class F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const T* pa = static_cast<const T*>(a.raw_data());
  const T* pb = static_cast<const T*>(b.raw_data());
  R* po = static_cast<R*>(out.raw_data());
  auto plan = make_plan<2>(out.shape(), {&a.shape(), &b.shape()});
  for_each_run(plan, kGrain, [&](int64_t o, const std::array<int64_t, 2>& off, int64_t n,
                                 const std::array<int64_t, 2>& st) {
    const T* x = pa + off[0];
    const T* y = pb + off[1];
    R* z = po + o;
    // Separate loops per stride pattern so the compiler vectorises each.
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], y[i]);
    } else if (st[0] == 1 && st[1] == 0) {
      const T yv = *y;
      for (int64_t i = 0; i < n; ++i) z[i] = f(x[i], yv);
    } else if (st[0] == 0 && st[1] == 1) {
      const T xv = *x;
      for (int64_t i = 0; i < n; ++i) z[i] = f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) z[i] = f(x[i * st[0]], y[i * st[1]]);
    }
  });
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  using U = uint8_t;
  switch (op) {
    case BinaryOp::add: return binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x + y); });
    case BinaryOp::sub: return binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x - y); });
    case BinaryOp::mul: return binary_loop<T, T>(a, b, out, [](T x, T y) { return static_cast<T>(x * y); });
    case BinaryOp::div:
      if constexpr (std::is_floating_point_v<T>) {
        return binary_loop<T, T>(a, b, out, [](T x, T y) { return x / y; });
      } else {
        // Integer division by zero is undefined in C++; define it as 0 rather than trap.
        return binary_loop<T, T>(a, b, out, [](T x, T y) { return y == 0 ? T(0) : static_cast<T>(x / y); });
      }
    case BinaryOp::minimum: return binary_loop<T, T>(a, b, out, [](T x, T y) { return y < x ? y : x; });
    case BinaryOp::maximum: return binary_loop<T, T>(a, b, out, [](T x, T y) { return y > x ? y : x; });
    case BinaryOp::eq: return binary_loop<T, U>(a, b, out, [](T x, T y) { return U(x == y); });
    case BinaryOp::ne: return binary_loop<T, U>(a, b, out, [](T x, T y) { return U(x != y); });
    case BinaryOp::lt: return binary_loop<T, U>(a, b, out, [](T x, T y) { return U(x < y); });
    case BinaryOp::le: return binary_loop<T, U>(a, b, out, [](T x, T y) { return U(x <= y); });
    case BinaryOp::gt: return binary_loop<T, U>(a, b, out, [](T x, T y) { return U(x > y); });
    case BinaryOp::ge: return binary_loop<T, U>(a, b, out, [](T x, T y) { return U(x >= y); });
  }
}

template <class F>
void map1(const Tensor& x, Tensor& y, F f) {
  const float* px = x.data<float>();
  float* py = y.data<float>();
  parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) py[i] = f(px[i]);
  });
}

template <class F>
void map2(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* po = out.data<float>();
  parallel_for(out.numel(), kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) po[i] = f(pa[i], pb[i]);
  });
}

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  visit_dtype(a.dtype(), [&](auto tag) { binary_typed<decltype(tag)>(op, a, b, out); });
}

void unary(UnaryOp op, const Tensor& x, Tensor& y, float p0, float p1) {
  switch (op) {
    case UnaryOp::neg: return map1(x, y, [](float v) { return -v; });
    case UnaryOp::pow:
      if (p0 == 2.0f) return map1(x, y, [](float v) { return v * v; });
      return map1(x, y, [p0](float v) { return std::pow(v, p0); });
    case UnaryOp::exp: return map1(x, y, [](float v) { return std::exp(v); });
    case UnaryOp::log: return map1(x, y, [](float v) { return std::log(v); });
    case UnaryOp::sqrt: return map1(x, y, [](float v) { return std::sqrt(v); });
    case UnaryOp::abs: return map1(x, y, [](float v) { return std::fabs(v); });
    case UnaryOp::sign: return map1(x, y, [](float v) { return static_cast<float>((v > 0) - (v < 0)); });
    case UnaryOp::tanh: return map1(x, y, [](float v) { return std::tanh(v); });
    case UnaryOp::sigmoid:
      // Written so that neither branch overflows exp.
      return map1(x, y, [](float v) {
        if (v >= 0) return 1.0f / (1.0f + std::exp(-v));
        float e = std::exp(v);
        return e / (1.0f + e);
      });
    case UnaryOp::relu: return map1(x, y, [](float v) { return v > 0 ? v : 0.0f; });
    case UnaryOp::clamp: return map1(x, y, [p0, p1](float v) { return v < p0 ? p0 : (v > p1 ? p1 : v); });
    case UnaryOp::round: return map1(x, y, [](float v) { return std::nearbyint(v); });
    case UnaryOp::floor: return map1(x, y, [](float v) { return std::floor(v); });
    case UnaryOp::ceil: return map1(x, y, [](float v) { return std::ceil(v); });
  }
}

void unary_backward(UnaryOp op, const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx, float p0, float p1) {
  switch (op) {
    case UnaryOp::neg: return map1(dy, dx, [](float g) { return -g; });
    case UnaryOp::pow:
      return map2(dy, x, dx, [p0](float g, float v) { return g * p0 * std::pow(v, p0 - 1.0f); });
    case UnaryOp::exp: return map2(dy, y, dx, [](float g, float v) { return g * v; });
    case UnaryOp::log: return map2(dy, x, dx, [](float g, float v) { return g / v; });
    case UnaryOp::sqrt: return map2(dy, y, dx, [](float g, float v) { return g / (2.0f * v); });
    case UnaryOp::abs:
      return map2(dy, x, dx, [](float g, float v) { return v > 0 ? g : (v < 0 ? -g : 0.0f); });
    case UnaryOp::tanh: return map2(dy, y, dx, [](float g, float v) { return g * (1.0f - v * v); });
    case UnaryOp::sigmoid: return map2(dy, y, dx, [](float g, float v) { return g * v * (1.0f - v); });
    case UnaryOp::relu: return map2(dy, x, dx, [](float g, float v) { return v > 0 ? g : 0.0f; });
    case UnaryOp::clamp:
      return map2(dy, x, dx, [p0, p1](float g, float v) { return v >= p0 && v <= p1 ? g : 0.0f; });
    case UnaryOp::sign:
    case UnaryOp::round:
    case UnaryOp::floor:
    case UnaryOp::ceil: return map1(dy, dx, [](float) { return 0.0f; });
  }
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  Tensor c = cond.dtype() == DType::u8 ? cond : Tensor();
  LOWBIT_CHECK(c.defined(), "where", "condition must be u8 (a comparison result), got ", dtype_name(cond.dtype()));
  const uint8_t* pc = c.data<uint8_t>();
  auto plan = make_plan<3>(out.shape(), {&c.shape(), &a.shape(), &b.shape()});
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    for_each_run(plan, kGrain, [&](int64_t o, const std::array<int64_t, 3>& off, int64_t n,
                                   const std::array<int64_t, 3>& st) {
      for (int64_t i = 0; i < n; ++i)
        po[o + i] = pc[off[0] + i * st[0]] ? pa[off[1] + i * st[1]] : pb[off[2] + i * st[2]];
    });
  });
}

void minmax_backward(bool is_max, const Tensor& dy, const Tensor& a, const Tensor& b, Tensor& da, Tensor& db) {
  const float* pg = dy.data<float>();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pda = da.data<float>();
  float* pdb = db.data<float>();
  auto plan = make_plan<2>(dy.shape(), {&a.shape(), &b.shape()});
  for_each_run(plan, kGrain, [&](int64_t o, const std::array<int64_t, 2>& off, int64_t n,
                                 const std::array<int64_t, 2>& st) {
    for (int64_t i = 0; i < n; ++i) {
      float x = pa[off[0] + i * st[0]], y = pb[off[1] + i * st[1]], g = pg[o + i];
      bool a_wins = is_max ? x > y : x < y;
      bool tie = x == y;
      pda[o + i] = tie ? 0.5f * g : (a_wins ? g : 0.0f);
      pdb[o + i] = tie ? 0.5f * g : (a_wins ? 0.0f : g);
    }
  });
}

void cast(const Tensor& x, Tensor& y) {
  visit_dtype(x.dtype(), [&](auto in_tag) {
    using S = decltype(in_tag);
    visit_dtype(y.dtype(), [&](auto out_tag) {
      using D = decltype(out_tag);
      const S* px = static_cast<const S*>(x.raw_data());
      D* py = static_cast<D*>(y.raw_data());
      parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) py[i] = static_cast<D>(px[i]);
      });
    });
  });
}

void fill(Tensor& t, double value) {
  visit_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.raw_data());
    const T v = static_cast<T>(value);
    parallel_for(t.numel(), kGrain, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, v); });
  });
}

void copy(const Tensor& src, Tensor& dst) {
  const char* s = static_cast<const char*>(src.raw_data());
  char* d = static_cast<char*>(dst.raw_data());
  const int64_t es = static_cast<int64_t>(dtype_size(src.dtype()));
  parallel_for(src.numel(), kGrain, [&](int64_t b, int64_t e) { std::memcpy(d + b * es, s + b * es, (e - b) * es); });
}

}  // namespace lowbit::cpu
