// Element-wise ops with numpy broadcasting, comparisons, casts and fills.
#pragma once

#include "../tensor.h"

namespace lowbit {

// ---- binary, with broadcasting (both operands of one dtype) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// Element-wise min/max; on ties the gradient is split evenly between the two inputs.
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
// Scalar forms: the scalar takes the tensor's dtype.
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);

// ---- comparisons: u8 results (1 where true), no gradient ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// ---- unary (f32) ----
Tensor neg(const Tensor& x);
Tensor pow(const Tensor& x, double p);  // x^p for a scalar exponent
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);    // gradient sign(x), 0 at 0
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);   // gradient 1 for x > 0, else 0
Tensor clamp(const Tensor& x, double lo, double hi);  // gradient 1 on [lo, hi], else 0
// Piecewise-constant functions have derivative 0 almost everywhere, so these ops record
// nothing: their outputs never require a gradient. Straight-through estimators that
// pretend otherwise are explicit CustomFunctions (quant/).
Tensor sign(const Tensor& x);
Tensor round(const Tensor& x);  // halves to even, as torch.round and numpy.round
Tensor floor(const Tensor& x);
Tensor ceil(const Tensor& x);

// where(cond, a, b): a where cond != 0 else b; cond is u8 (or any dtype), all broadcast.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// Value conversion between dtypes (f32 -> integer truncates toward zero). Not recorded.
Tensor cast(const Tensor& x, DType dtype);

// Sums a broadcast gradient back to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// Kernels behind Tensor::fill_ and Tensor::copy_ (never recorded).
void fill_kernel(Tensor& t, double value);
void copy_kernel(const Tensor& src, Tensor& dst);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return sub(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return div(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator-(double s, const Tensor& a) { return add(neg(a), s); }

}  // namespace lowbit
