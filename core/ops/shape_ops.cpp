// Shape ops: forward and backward of each.
#include "shape_ops.h"

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/shape.h"
#include "elementwise.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(ExpandKernel, expand_stub, cpu::expand, LOWBIT_CUDA_KERNEL(cuda::expand));

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

}  // namespace lowbit
