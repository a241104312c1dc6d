// Element-wise kernels: the interface each backend implements (cpu:: here, cuda:: beside it).
#pragma once

#include "../tensor.h"

namespace lowbit {

enum class BinaryOp : uint8_t { add, sub, mul, div, minimum, maximum, eq, ne, lt, le, gt, ge };
enum class UnaryOp : uint8_t { neg, pow, exp, log, sqrt, abs, sign, tanh, sigmoid, relu, clamp, round, floor, ceil };

inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

// out = op(a, b) with broadcasting; out already has the broadcast shape.
using BinaryKernel = void(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// y = op(x); p0, p1 are the exponent (pow) or the bounds (clamp).
using UnaryKernel = void(UnaryOp op, const Tensor& x, Tensor& y, float p0, float p1);
// dx = dy * op'(x) given x and y = op(x) (whichever the formula reads).
using UnaryBackwardKernel = void(UnaryOp op, const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx,
                                 float p0, float p1);
// out = cond ? a : b with broadcasting.
using WhereKernel = void(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
// Gradients of minimum/maximum: da, db (broadcast shape) from dy, a, b.
using MinMaxBackwardKernel = void(bool is_max, const Tensor& dy, const Tensor& a, const Tensor& b, Tensor& da,
                                  Tensor& db);
using CastKernel = void(const Tensor& x, Tensor& y);
using FillKernel = void(Tensor& t, double value);
using CopyKernel = void(const Tensor& src, Tensor& dst);

namespace cpu {
BinaryKernel binary;
UnaryKernel unary;
UnaryBackwardKernel unary_backward;
WhereKernel where;
MinMaxBackwardKernel minmax_backward;
CastKernel cast;
FillKernel fill;
CopyKernel copy;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
BinaryKernel binary;
UnaryKernel unary;
UnaryBackwardKernel unary_backward;
WhereKernel where;
MinMaxBackwardKernel minmax_backward;
CastKernel cast;
FillKernel fill;
CopyKernel copy;
}  // namespace cuda

}  // namespace lowbit
