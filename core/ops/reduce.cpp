// Reductions: sum, mean, var, logsumexp, max/min (with indices); backward beside each forward.
#include "reduce.h"

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/reduce.h"
#include "elementwise.h"
#include "shape_ops.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(ReduceKernel, reduce_stub, cpu::reduce, LOWBIT_CUDA_KERNEL(cuda::reduce));
LOWBIT_DISPATCH_STUB(VarKernel, var_stub, cpu::var, LOWBIT_CUDA_KERNEL(cuda::var));
LOWBIT_DISPATCH_STUB(ReduceScatterKernel, reduce_scatter_stub, cpu::reduce_scatter,
                     LOWBIT_CUDA_KERNEL(cuda::reduce_scatter));

namespace {

Shape reduced_shape(const Shape& s, const Axes& axes, bool keepdim) {
  Shape r;
  for (size_t i = 0; i < s.size(); ++i) {
    bool red = std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
    if (!red) r.push_back(s[i]);
    else if (keepdim) r.push_back(1);
  }
  return r;
}

void check_f32(const Tensor& x, const char* op) {
  LOWBIT_CHECK(x.dtype() == DType::f32, op, "needs an f32 tensor, got ", dtype_name(x.dtype()), " ",
               shape_str(x.shape()));
}

Tensor reduce_values(ReduceOp op, const char* name, const Tensor& x, const Axes& ax, bool keepdim, Tensor* index) {
  check_f32(x, name);
  if (op == ReduceOp::max || op == ReduceOp::min)
    for (int64_t a : ax)
      LOWBIT_CHECK(x.shape()[a] > 0, name, "cannot reduce an empty axis ", a, " of ", shape_str(x.shape()));
  Tensor y = Tensor::empty(reduced_shape(x.shape(), ax, keepdim), DType::f32, x.device());
  if (index) *index = Tensor::empty(y.shape(), DType::i64, x.device());
  reduce_stub[x.device()](op, x, ax, y, index);
  return y;
}

// Gradient of a reduction over `ax`: dy reshaped with the reduced axes kept as 1.
Tensor keepdim_view(const Tensor& dy, const Shape& xs, const Axes& ax) { return dy.reshape(reduced_shape(xs, ax, true)); }

// y = extreme of x over ax.  dx = dy at the recorded index, 0 elsewhere.
Tensor extreme(ReduceOp op, const char* name, const Tensor& x, const Axes& axes, bool keepdim, Tensor* index_out) {
  Axes ax = normalize_axes(axes, x.dim(), name);
  Tensor index;
  Tensor y = reduce_values(op, name, x, ax, keepdim, &index);
  if (index_out) *index_out = index;
  return record(name, y, {x}, [index, ax, xs = x.shape()](const Tensor& dy, Grads& g) {
    Tensor dx = Tensor::empty(xs, DType::f32, dy.device());
    reduce_scatter_stub[dy.device()](dy, index, ax, dx);
    g.set(0, dx);
  });
}

}  // namespace

// y = sum of x over axes.  dx = broadcast of dy.
Tensor sum(const Tensor& x, const Axes& axes, bool keepdim) {
  Axes ax = normalize_axes(axes, x.dim(), "sum");
  Tensor y = reduce_values(ReduceOp::sum, "sum", x, ax, keepdim, nullptr);
  return record("sum", y, {x}, [ax, xs = x.shape()](const Tensor& dy, Grads& g) {
    g.set(0, expand(keepdim_view(dy, xs, ax), xs));
  });
}

// y = mean of x over axes.  dx = broadcast of dy / n.
Tensor mean(const Tensor& x, const Axes& axes, bool keepdim) {
  Axes ax = normalize_axes(axes, x.dim(), "mean");
  Tensor y = reduce_values(ReduceOp::mean, "mean", x, ax, keepdim, nullptr);
  int64_t n = 1;
  for (int64_t a : ax) n *= x.shape()[a];
  return record("mean", y, {x}, [ax, n, xs = x.shape()](const Tensor& dy, Grads& g) {
    g.set(0, expand(keepdim_view(dy, xs, ax), xs) * (1.0 / static_cast<double>(std::max<int64_t>(n, 1))));
  });
}

// y = sum((x - m)^2) / (n - c) with m the mean over axes.
// dx = dy * 2 (x - m) / (n - c)  (the mean's own dependence on x cancels: sum(x - m) = 0).
Tensor var(const Tensor& x, const Axes& axes, bool keepdim, int64_t correction) {
  check_f32(x, "var");
  Axes ax = normalize_axes(axes, x.dim(), "var");
  Tensor y = Tensor::empty(reduced_shape(x.shape(), ax, keepdim), DType::f32, x.device());
  const bool grad = needs_grad({x});
  Tensor m = grad ? Tensor::empty(y.shape(), DType::f32, x.device()) : Tensor();
  var_stub[x.device()](x, ax, correction, y, grad ? &m : nullptr);
  int64_t n = 1;
  for (int64_t a : ax) n *= x.shape()[a];
  const double div = static_cast<double>(std::max<int64_t>(0, n - correction));
  return record("var", y, {x}, [x, m, ax, div](const Tensor& dy, Grads& g) {
    const Shape& xs = x.shape();
    g.set(0, (x - keepdim_view(m, xs, ax)) * keepdim_view(dy, xs, ax) * (2.0 / div));
  });
}

// y = log(sum(exp(x))) over axes.  dx = dy * exp(x - y), i.e. dy times the softmax of x.
Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdim) {
  Axes ax = normalize_axes(axes, x.dim(), "logsumexp");
  Tensor y = reduce_values(ReduceOp::logsumexp, "logsumexp", x, ax, keepdim, nullptr);
  return record("logsumexp", y, {x}, [x, y, ax](const Tensor& dy, Grads& g) {
    const Shape& xs = x.shape();
    g.set(0, exp(x - keepdim_view(y, xs, ax)) * keepdim_view(dy, xs, ax));
  });
}

Tensor max(const Tensor& x, const Axes& axes, bool keepdim) { return extreme(ReduceOp::max, "max", x, axes, keepdim, nullptr); }
Tensor min(const Tensor& x, const Axes& axes, bool keepdim) { return extreme(ReduceOp::min, "min", x, axes, keepdim, nullptr); }

std::pair<Tensor, Tensor> max_with_indices(const Tensor& x, int64_t axis, bool keepdim) {
  Tensor idx;
  Tensor y = extreme(ReduceOp::max, "max", x, {normalize_axis(axis, x.dim(), "max")}, keepdim, &idx);
  return {y, idx};
}
std::pair<Tensor, Tensor> min_with_indices(const Tensor& x, int64_t axis, bool keepdim) {
  Tensor idx;
  Tensor y = extreme(ReduceOp::min, "min", x, {normalize_axis(axis, x.dim(), "min")}, keepdim, &idx);
  return {y, idx};
}
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim) {
  NoGradGuard ng;
  return max_with_indices(x, axis, keepdim).second;
}
Tensor argmin(const Tensor& x, int64_t axis, bool keepdim) {
  NoGradGuard ng;
  return min_with_indices(x, axis, keepdim).second;
}

}  // namespace lowbit
