// softmax and log_softmax: fused forward and backward kernels over one axis.
#include "softmax.h"

#include <algorithm>

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/softmax.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(SoftmaxKernel, softmax_stub, cpu::softmax, LOWBIT_CUDA_KERNEL(cuda::softmax));
LOWBIT_DISPATCH_STUB(SoftmaxBackwardKernel, softmax_backward_stub, cpu::softmax_backward,
                     LOWBIT_CUDA_KERNEL(cuda::softmax_backward));

namespace {

// Both directions read only y (and dy), so y is all that is saved.
Tensor softmax_like(bool log, const char* name, const Tensor& x, int64_t axis) {
  LOWBIT_CHECK(x.dtype() == DType::f32, name, "needs an f32 tensor, got ", dtype_name(x.dtype()), " ",
               shape_str(x.shape()));
  // A 0-d tensor takes axis 0 or -1, as in PyTorch.
  const int64_t ax = normalize_axis(axis, std::max<int64_t>(x.dim(), 1), name);
  Tensor y = Tensor::empty(x.shape(), DType::f32, x.device());
  softmax_stub[x.device()](log, x, ax, y);
  return record(name, y, {x}, [log, y, ax](const Tensor& dy, Grads& g) {
    Tensor dx = Tensor::empty(y.shape(), DType::f32, y.device());
    softmax_backward_stub[y.device()](log, dy, y, ax, dx);
    g.set(0, dx);
  });
}

}  // namespace

// y = exp(x) / sum(exp(x)).  dx = y * (dy - sum(dy * y)).
Tensor softmax(const Tensor& x, int64_t axis) { return softmax_like(false, "softmax", x, axis); }

// y = x - logsumexp(x).  dx = dy - exp(y) * sum(dy).
Tensor log_softmax(const Tensor& x, int64_t axis) { return softmax_like(true, "log_softmax", x, axis); }

}  // namespace lowbit
