// Element-wise ops: forward through the device kernels, backward right beside each.
#include "elementwise.h"

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/elementwise.h"
#include "reduce.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(BinaryKernel, binary_stub, cpu::binary, LOWBIT_CUDA_KERNEL(cuda::binary));
LOWBIT_DISPATCH_STUB(UnaryKernel, unary_stub, cpu::unary, LOWBIT_CUDA_KERNEL(cuda::unary));
LOWBIT_DISPATCH_STUB(UnaryBackwardKernel, unary_backward_stub, cpu::unary_backward,
                     LOWBIT_CUDA_KERNEL(cuda::unary_backward));
LOWBIT_DISPATCH_STUB(WhereKernel, where_stub, cpu::where, LOWBIT_CUDA_KERNEL(cuda::where));
LOWBIT_DISPATCH_STUB(MinMaxBackwardKernel, minmax_backward_stub, cpu::minmax_backward,
                     LOWBIT_CUDA_KERNEL(cuda::minmax_backward));
LOWBIT_DISPATCH_STUB(CastKernel, cast_stub, cpu::cast, LOWBIT_CUDA_KERNEL(cuda::cast));
LOWBIT_DISPATCH_STUB(FillKernel, fill_stub, cpu::fill, LOWBIT_CUDA_KERNEL(cuda::fill));
LOWBIT_DISPATCH_STUB(CopyKernel, copy_stub, cpu::copy, LOWBIT_CUDA_KERNEL(cuda::copy));

namespace {

const char* op_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "minimum", "maximum", "eq", "ne", "lt", "le", "gt", "ge"};
  return names[static_cast<int>(op)];
}

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  LOWBIT_CHECK(a.dtype() == b.dtype(), name, "dtypes differ: ", dtype_name(a.dtype()), " ", shape_str(a.shape()),
               " and ", dtype_name(b.dtype()), " ", shape_str(b.shape()), " (convert one with .to())");
  LOWBIT_CHECK(a.device() == b.device(), name, "operands on ", a.device().str(), " and ", b.device().str());
  Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(s, is_comparison(op) ? DType::u8 : a.dtype(), a.device());
  binary_stub[a.device()](op, a, b, out);
  return out;
}

Tensor scalar_like(const Tensor& a, double s) { return Tensor::full({}, s, a.dtype(), a.device()); }

Tensor unary_forward(UnaryOp op, const char* name, const Tensor& x, float p0 = 0, float p1 = 0) {
  LOWBIT_CHECK(x.dtype() == DType::f32, name, "needs an f32 tensor, got ", dtype_name(x.dtype()), " ",
               shape_str(x.shape()));
  Tensor y = Tensor::empty(x.shape(), DType::f32, x.device());
  unary_stub[x.device()](op, x, y, p0, p1);
  return y;
}

// y = op(x); dx = dy * op'(x) through the fused backward kernel (one pass).
Tensor unary_recorded(UnaryOp op, const char* name, const Tensor& x, float p0 = 0, float p1 = 0) {
  Tensor y = unary_forward(op, name, x, p0, p1);
  return record(name, y, {x}, [op, x, y, p0, p1](const Tensor& dy, Grads& g) {
    Tensor dx = Tensor::empty(x.shape(), DType::f32, x.device());
    unary_backward_stub[x.device()](op, dy, x, y, dx, p0, p1);
    g.set(0, dx);
  });
}

}  // namespace

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  LOWBIT_CHECK(shape.size() <= x.shape().size(), "sum_to", "cannot reduce ", shape_str(x.shape()), " to ",
               shape_str(shape));
  size_t lead = x.shape().size() - shape.size();
  std::vector<int64_t> axes;
  for (size_t i = 0; i < x.shape().size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1)) axes.push_back(static_cast<int64_t>(i));
  Tensor r = axes.empty() ? x : sum(x, axes, true);
  return r.reshape(shape);
}

// y = a + b.  da = sum_to(dy, a), db = sum_to(dy, b).
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::add, a, b);
  return record("add", y, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& dy, Grads& g) {
    if (g.wants(0)) g.set(0, sum_to(dy, sa));
    if (g.wants(1)) g.set(1, sum_to(dy, sb));
  });
}

// y = a - b.  da = sum_to(dy, a), db = -sum_to(dy, b).
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::sub, a, b);
  return record("sub", y, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& dy, Grads& g) {
    if (g.wants(0)) g.set(0, sum_to(dy, sa));
    if (g.wants(1)) g.set(1, neg(sum_to(dy, sb)));
  });
}

// y = a * b.  da = sum_to(dy * b, a), db = sum_to(dy * a, b).
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::mul, a, b);
  return record("mul", y, {a, b}, [a, b](const Tensor& dy, Grads& g) {
    if (g.wants(0)) g.set(0, sum_to(mul(dy, b), a.shape()));
    if (g.wants(1)) g.set(1, sum_to(mul(dy, a), b.shape()));
  });
}

// y = a / b.  da = sum_to(dy / b, a), db = -sum_to(dy * y / b, b).
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::div, a, b);
  return record("div", y, {a, b}, [a, b, y](const Tensor& dy, Grads& g) {
    Tensor dy_b = div(dy, b);
    if (g.wants(0)) g.set(0, sum_to(dy_b, a.shape()));
    if (g.wants(1)) g.set(1, neg(sum_to(mul(dy_b, y), b.shape())));
  });
}

namespace {
// min/max: the gradient goes to the selected operand, half to each on ties.
Tensor minmax(bool is_max, const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(is_max ? BinaryOp::maximum : BinaryOp::minimum, a, b);
  return record(is_max ? "maximum" : "minimum", y, {a, b}, [is_max, a, b](const Tensor& dy, Grads& g) {
    Tensor da = Tensor::empty(dy.shape(), DType::f32, dy.device());
    Tensor db = Tensor::empty(dy.shape(), DType::f32, dy.device());
    minmax_backward_stub[dy.device()](is_max, dy, a, b, da, db);
    if (g.wants(0)) g.set(0, sum_to(da, a.shape()));
    if (g.wants(1)) g.set(1, sum_to(db, b.shape()));
  });
}
}  // namespace

Tensor minimum(const Tensor& a, const Tensor& b) { return minmax(false, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return minmax(true, a, b); }

Tensor add(const Tensor& a, double s) { return add(a, scalar_like(a, s)); }
Tensor sub(const Tensor& a, double s) { return sub(a, scalar_like(a, s)); }
Tensor mul(const Tensor& a, double s) { return mul(a, scalar_like(a, s)); }
Tensor div(const Tensor& a, double s) { return div(a, scalar_like(a, s)); }

Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::ge, a, b); }

// Unary derivatives (in kernels/elementwise, cpu::unary_backward):
//   neg: -dy; pow: dy*p*x^(p-1); exp: dy*y; log: dy/x; sqrt: dy/(2y); abs: dy*sign(x);
//   tanh: dy*(1-y^2); sigmoid: dy*y*(1-y); relu: dy*[x>0]; clamp: dy*[lo<=x<=hi].
Tensor neg(const Tensor& x) { return unary_recorded(UnaryOp::neg, "neg", x); }
Tensor pow(const Tensor& x, double p) { return unary_recorded(UnaryOp::pow, "pow", x, static_cast<float>(p)); }
Tensor exp(const Tensor& x) { return unary_recorded(UnaryOp::exp, "exp", x); }
Tensor log(const Tensor& x) { return unary_recorded(UnaryOp::log, "log", x); }
Tensor sqrt(const Tensor& x) { return unary_recorded(UnaryOp::sqrt, "sqrt", x); }
Tensor abs(const Tensor& x) { return unary_recorded(UnaryOp::abs, "abs", x); }
Tensor tanh(const Tensor& x) { return unary_recorded(UnaryOp::tanh, "tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary_recorded(UnaryOp::sigmoid, "sigmoid", x); }
Tensor relu(const Tensor& x) { return unary_recorded(UnaryOp::relu, "relu", x); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  LOWBIT_CHECK(lo <= hi, "clamp", "lower bound ", lo, " is above upper bound ", hi);
  return unary_recorded(UnaryOp::clamp, "clamp", x, static_cast<float>(lo), static_cast<float>(hi));
}
Tensor sign(const Tensor& x) { return unary_forward(UnaryOp::sign, "sign", x); }
Tensor round(const Tensor& x) { return unary_forward(UnaryOp::round, "round", x); }
Tensor floor(const Tensor& x) { return unary_forward(UnaryOp::floor, "floor", x); }
Tensor ceil(const Tensor& x) { return unary_forward(UnaryOp::ceil, "ceil", x); }

// y = cond ? a : b.  da = sum_to(cond ? dy : 0, a), db = sum_to(cond ? 0 : dy, b).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  LOWBIT_CHECK(a.dtype() == b.dtype(), "where", "dtypes differ: ", dtype_name(a.dtype()), " ", shape_str(a.shape()),
               " and ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
  LOWBIT_CHECK(cond.device() == a.device() && a.device() == b.device(), "where", "operands on different devices");
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor y = Tensor::empty(s, a.dtype(), a.device());
  where_stub[a.device()](cond, a, b, y);
  return record("where", y, {a, b}, [cond, sa = a.shape(), sb = b.shape()](const Tensor& dy, Grads& g) {
    Tensor zero = Tensor::zeros({}, DType::f32, dy.device());
    if (g.wants(0)) g.set(0, sum_to(where(cond, dy, zero), sa));
    if (g.wants(1)) g.set(1, sum_to(where(cond, zero, dy), sb));
  });
}

Tensor cast(const Tensor& x, DType dtype) {
  Tensor y = Tensor::empty(x.shape(), dtype, x.device());
  cast_stub[x.device()](x, y);
  return y;
}

void fill_kernel(Tensor& t, double value) { fill_stub[t.device()](t, value); }

void copy_kernel(const Tensor& src, Tensor& dst) {
  LOWBIT_CHECK(src.device() == dst.device(), "Tensor::copy_", "copy from ", src.device().str(), " to ",
               dst.device().str(), " needs Tensor::to(Device)");
  copy_stub[dst.device()](src, dst);
}

}  // namespace lowbit
