// Shape ops: forward and backward of each.
#include "shape_ops.h"

#include <algorithm>

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/shape.h"
#include "elementwise.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(ExpandKernel, expand_stub, cpu::expand, LOWBIT_CUDA_KERNEL(cuda::expand));
LOWBIT_DISPATCH_STUB(PermuteKernel, permute_stub, cpu::permute, LOWBIT_CUDA_KERNEL(cuda::permute));
LOWBIT_DISPATCH_STUB(ConcatKernel, concat_stub, cpu::concat, LOWBIT_CUDA_KERNEL(cuda::concat));
LOWBIT_DISPATCH_STUB(SliceKernel, slice_stub, cpu::slice, LOWBIT_CUDA_KERNEL(cuda::slice));
LOWBIT_DISPATCH_STUB(SliceBackwardKernel, slice_backward_stub, cpu::slice_backward,
                     LOWBIT_CUDA_KERNEL(cuda::slice_backward));
LOWBIT_DISPATCH_STUB(IndexSelectKernel, index_select_stub, cpu::index_select, LOWBIT_CUDA_KERNEL(cuda::index_select));
LOWBIT_DISPATCH_STUB(IndexAddKernel, index_add_stub, cpu::index_add, LOWBIT_CUDA_KERNEL(cuda::index_add));
LOWBIT_DISPATCH_STUB(GatherKernel, gather_stub, cpu::gather, LOWBIT_CUDA_KERNEL(cuda::gather));
LOWBIT_DISPATCH_STUB(ScatterAddKernel, scatter_add_stub, cpu::scatter_add, LOWBIT_CUDA_KERNEL(cuda::scatter_add));
LOWBIT_DISPATCH_STUB(OneHotKernel, one_hot_stub, cpu::one_hot, LOWBIT_CUDA_KERNEL(cuda::one_hot));

namespace {

// Normalises `axis` of x for op (x must have at least one dimension), naming x's shape.
int64_t axis_of(const Tensor& x, int64_t axis, const char* op) {
  const int64_t nd = x.dim();
  LOWBIT_CHECK(nd >= 1 && axis >= -nd && axis < nd, op, "axis ", axis, " is out of range for a tensor of shape ",
               shape_str(x.shape()));
  return axis < 0 ? axis + nd : axis;
}

void check_index_dtype(const Tensor& index, const char* op) {
  LOWBIT_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32, op, "index must be i64 or i32, got ",
               dtype_name(index.dtype()), " ", shape_str(index.shape()));
}

void check_same_device(const Tensor& x, const Tensor& index, const char* op) {
  LOWBIT_CHECK(x.device() == index.device(), op, "x ", shape_str(x.shape()), " is on ", x.device().str(),
               " but index ", shape_str(index.shape()), " is on ", index.device().str());
}

Tensor permute_raw(const Tensor& x, const std::vector<int64_t>& perm) {
  Shape s(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) s[i] = x.shape()[perm[i]];
  Tensor y = Tensor::empty(s, x.dtype(), x.device());
  permute_stub[x.device()](x, perm, y);
  return y;
}

// x[start : start + len*step : step] on axis, unrecorded.
Tensor slice_raw(const Tensor& x, int64_t axis, int64_t start, int64_t len, int64_t step) {
  Shape s = x.shape();
  s[axis] = len;
  Tensor y = Tensor::empty(s, x.dtype(), x.device());
  if (y.numel() > 0) slice_stub[x.device()](x, axis, start, step, y);
  return y;
}

// The slice of x taken by slice_raw, recorded. dx = dy scattered into zeros at the taken rows.
Tensor slice_recorded(const char* name, const Tensor& x, int64_t axis, int64_t start, int64_t len, int64_t step) {
  Tensor y = slice_raw(x, axis, start, len, step);
  return record(name, y, {x}, [xs = x.shape(), axis, start, step](const Tensor& dy, Grads& g) {
    Tensor dx = Tensor::empty(xs, DType::f32, dy.device());
    slice_backward_stub[dy.device()](dy, axis, start, step, dx);
    g.set(0, dx);
  });
}

// xs joined along axis (shapes already checked), unrecorded.
Tensor concat_raw(const std::vector<Tensor>& xs, int64_t axis, Shape out_shape) {
  Tensor y = Tensor::empty(out_shape, xs[0].dtype(), xs[0].device());
  if (y.numel() > 0) concat_stub[y.device()](xs, axis, y);
  return y;
}

// Checks what concat and stack share: a non-empty list of one dtype and device.
void check_list(const std::vector<Tensor>& xs, const char* op) {
  LOWBIT_CHECK(!xs.empty(), op, "needs at least one tensor");
  for (size_t k = 1; k < xs.size(); ++k) {
    LOWBIT_CHECK(xs[k].dtype() == xs[0].dtype(), op, "input ", k, " is ", dtype_name(xs[k].dtype()), " ",
                 shape_str(xs[k].shape()), " but input 0 is ", dtype_name(xs[0].dtype()), " ",
                 shape_str(xs[0].shape()));
    LOWBIT_CHECK(xs[k].device() == xs[0].device(), op, "input ", k, " ", shape_str(xs[k].shape()), " is on ",
                 xs[k].device().str(), " but input 0 ", shape_str(xs[0].shape()), " is on ", xs[0].device().str());
  }
}

}  // namespace

// y = x broadcast to shape.  dx = sum_to(dy, x.shape).
Tensor expand(const Tensor& x, const Shape& shape) {
  Shape s = broadcast_shapes(x.shape(), shape, "expand");
  LOWBIT_CHECK(s == shape, "expand", "cannot expand ", shape_str(x.shape()), " to ", shape_str(shape));
  if (x.shape() == shape) return x;
  Tensor y = Tensor::empty(shape, x.dtype(), x.device());
  expand_stub[x.device()](x, y);
  return record("expand", y, {x}, [xs = x.shape()](const Tensor& dy, Grads& g) { g.set(0, sum_to(dy, xs)); });
}

Tensor unsqueeze(const Tensor& x, int64_t axis) {
  int64_t a = normalize_axis(axis, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + a, 1);
  return x.reshape(s);
}

Tensor squeeze(const Tensor& x, int64_t axis) {
  int64_t a = normalize_axis(axis, x.dim(), "squeeze");
  LOWBIT_CHECK(x.shape()[a] == 1, "squeeze", "axis ", axis, " of ", shape_str(x.shape()), " has size ",
               x.shape()[a], ", not 1");
  Shape s = x.shape();
  s.erase(s.begin() + a);
  return x.reshape(s);
}

// y = x with axes a0 and a1 swapped.  dx = transpose(dy, a0, a1).
Tensor transpose(const Tensor& x, int64_t axis0, int64_t axis1) {
  const int64_t a0 = axis_of(x, axis0, "transpose"), a1 = axis_of(x, axis1, "transpose");
  std::vector<int64_t> perm(static_cast<size_t>(x.dim()));
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(i);
  std::swap(perm[a0], perm[a1]);
  Tensor y = permute_raw(x, perm);
  return record("transpose", y, {x}, [a0, a1](const Tensor& dy, Grads& g) { g.set(0, transpose(dy, a0, a1)); });
}

// y.shape[i] = x.shape[perm[i]].  dx = permute(dy, inverse(perm)).
Tensor permute(const Tensor& x, const std::vector<int64_t>& perm) {
  const int64_t nd = x.dim();
  std::vector<int64_t> p(perm.size()), inv(perm.size(), -1);
  bool ok = static_cast<int64_t>(perm.size()) == nd;
  for (size_t i = 0; ok && i < perm.size(); ++i) {
    p[i] = perm[i] < 0 ? perm[i] + nd : perm[i];
    ok = p[i] >= 0 && p[i] < nd && inv[p[i]] < 0;
    if (ok) inv[p[i]] = static_cast<int64_t>(i);
  }
  LOWBIT_CHECK(ok, "permute", shape_str(perm), " is not a permutation of the axes of a tensor of shape ",
               shape_str(x.shape()));
  Tensor y = permute_raw(x, p);
  return record("permute", y, {x}, [inv](const Tensor& dy, Grads& g) { g.set(0, permute(dy, inv)); });
}

// y = xs joined along axis.  dx_k = narrow(dy, axis, offset_k, n_k).
Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  check_list(xs, "concat");
  const int64_t a = axis_of(xs[0], axis, "concat");
  Shape out = xs[0].shape();
  std::vector<int64_t> sizes{out[a]};
  for (size_t k = 1; k < xs.size(); ++k) {
    const Shape& s = xs[k].shape();
    bool match = s.size() == out.size();
    for (size_t d = 0; match && d < s.size(); ++d) match = static_cast<int64_t>(d) == a || s[d] == out[d];
    LOWBIT_CHECK(match, "concat", "input ", k, " has shape ", shape_str(s), " but input 0 has ",
                 shape_str(xs[0].shape()), "; all must match except on axis ", axis);
    sizes.push_back(s[a]);
    out[a] += s[a];
  }
  Tensor y = concat_raw(xs, a, out);
  return record("concat", y, xs, [a, sizes](const Tensor& dy, Grads& g) {
    int64_t at = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      if (g.wants(k)) g.set(k, narrow(dy, a, at, sizes[k]));
      at += sizes[k];
    }
  });
}

// y = xs stacked on a new axis.  dx_k = dy at index k of that axis.
Tensor stack(const std::vector<Tensor>& xs, int64_t axis) {
  check_list(xs, "stack");
  const Shape& s0 = xs[0].shape();
  const int64_t nd = xs[0].dim() + 1;
  LOWBIT_CHECK(axis >= -nd && axis < nd, "stack", "axis ", axis, " is out of range for stacking tensors of shape ",
               shape_str(s0));
  const int64_t a = axis < 0 ? axis + nd : axis;
  Shape one = s0;
  one.insert(one.begin() + a, 1);
  std::vector<Tensor> views;
  for (size_t k = 0; k < xs.size(); ++k) {
    LOWBIT_CHECK(xs[k].shape() == s0, "stack", "input ", k, " has shape ", shape_str(xs[k].shape()),
                 " but input 0 has ", shape_str(s0), "; all must be equal");
    views.push_back(xs[k].detach().reshape(one));
  }
  Shape out = one;
  out[a] = static_cast<int64_t>(xs.size());
  Tensor y = concat_raw(views, a, out);
  return record("stack", y, xs, [a, s0](const Tensor& dy, Grads& g) {
    for (size_t k = 0; k < g.out().size(); ++k)
      if (g.wants(k)) g.set(k, slice_raw(dy, a, static_cast<int64_t>(k), 1, 1).reshape(s0));
  });
}

Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length) {
  const int64_t a = axis_of(x, axis, "narrow");
  const int64_t n = x.shape()[a];
  const int64_t s = start < 0 ? start + n : start;
  LOWBIT_CHECK(s >= 0 && length >= 0 && s + length <= n, "narrow", "[", start, ", ", start, " + ", length,
               ") is out of range for axis ", axis, " of ", shape_str(x.shape()));
  return slice_recorded("narrow", x, a, s, length, 1);
}

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  const int64_t a = axis_of(x, axis, "slice");
  LOWBIT_CHECK(step > 0, "slice", "step must be positive, got ", step, " (axis ", axis, " of ", shape_str(x.shape()),
               ")");
  const int64_t n = x.shape()[a];
  // Python's rules: negative bounds count from the end, then both clamp to [0, n].
  auto clampi = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
  const int64_t s = clampi(start), e = clampi(end);
  const int64_t len = e > s ? (e - s + step - 1) / step : 0;
  return slice_recorded("slice", x, a, s, len, step);
}

// y = x[.., index[j], ..].  dx = zeros with dy[.., j, ..] added at [.., index[j], ..].
Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index) {
  const int64_t a = axis_of(x, axis, "index_select");
  check_index_dtype(index, "index_select");
  check_same_device(x, index, "index_select");
  LOWBIT_CHECK(index.dim() == 1, "index_select", "index must be 1-D, got ", shape_str(index.shape()), " (x ",
               shape_str(x.shape()), ")");
  Shape s = x.shape();
  s[a] = index.numel();
  Tensor y = Tensor::empty(s, x.dtype(), x.device());
  if (y.numel() > 0 || index.numel() > 0) index_select_stub[x.device()]("index_select", x, a, index, y);
  return record("index_select", y, {x}, [a, index, xs = x.shape()](const Tensor& dy, Grads& g) {
    Tensor dx = Tensor::empty(xs, DType::f32, dy.device());
    index_add_stub[dy.device()](dy, a, index, dx);
    g.set(0, dx);
  });
}

// y[p] = x[p with its axis coordinate replaced by index[p]].  dx = zeros with dy[p] added there.
Tensor gather(const Tensor& x, int64_t axis, const Tensor& index) {
  const int64_t a = axis_of(x, axis, "gather");
  check_index_dtype(index, "gather");
  check_same_device(x, index, "gather");
  bool fits = index.dim() == x.dim();
  for (int64_t d = 0; fits && d < x.dim(); ++d) fits = d == a || index.shape()[d] <= x.shape()[d];
  LOWBIT_CHECK(fits, "gather", "index ", shape_str(index.shape()), " must have the rank of x ", shape_str(x.shape()),
               " and be no larger on every axis but ", axis);
  Tensor y = Tensor::empty(index.shape(), x.dtype(), x.device());
  if (y.numel() > 0) gather_stub[x.device()]("gather", x, a, index, y);
  return record("gather", y, {x}, [a, index, xs = x.shape()](const Tensor& dy, Grads& g) {
    Tensor dx = Tensor::empty(xs, DType::f32, dy.device());
    scatter_add_stub[dy.device()](dy, a, index, dx);
    g.set(0, dx);
  });
}

// No gradient: labels are integers.
Tensor one_hot(const Tensor& labels, int64_t num_classes) {
  check_index_dtype(labels, "one_hot");
  LOWBIT_CHECK(num_classes >= 1, "one_hot", "num_classes must be at least 1, got ", num_classes, " (labels ",
               shape_str(labels.shape()), ")");
  Shape s = labels.shape();
  s.push_back(num_classes);
  Tensor y = Tensor::empty(s, DType::f32, labels.device());
  if (y.numel() > 0) one_hot_stub[labels.device()]("one_hot", labels, num_classes, y);
  return y;
}

}  // namespace lowbit
