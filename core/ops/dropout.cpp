// Dropout: forward through the device kernel, backward beside it.
#include "dropout.h"

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/dropout.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(DropoutKernel, dropout_stub, cpu::dropout, LOWBIT_CUDA_KERNEL(cuda::dropout));
LOWBIT_DISPATCH_STUB(DropoutBackwardKernel, dropout_backward_stub, cpu::dropout_backward,
                     LOWBIT_CUDA_KERNEL(cuda::dropout_backward));

// y = x * mask / (1 - p).  dx = dy * mask / (1 - p).
// The mask is saved as u8 (a quarter of x's bytes): regenerating it from the counter
// range would cost a second Philox pass, several times slower than reading it back.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  LOWBIT_CHECK(p >= 0 && p <= 1, "dropout", "probability must be in [0, 1], got ", p, " (input ", shape_str(x.shape()),
               ")");
  LOWBIT_CHECK(x.dtype() == DType::f32, "dropout", "needs an f32 tensor, got ", dtype_name(x.dtype()), " ",
               shape_str(x.shape()));
  if (!training || p == 0) return x;
  if (p == 1) {
    Tensor y = Tensor::zeros(x.shape(), DType::f32, x.device());
    return record("dropout", y, {x}, [xs = x.shape()](const Tensor& dy, Grads& g) {
      g.set(0, Tensor::zeros(xs, DType::f32, dy.device()));
    });
  }
  const uint64_t base = gen.reserve(static_cast<uint64_t>((x.numel() + 3) / 4));
  const float pf = static_cast<float>(p), scale = static_cast<float>(1.0 / (1.0 - p));
  Tensor y = Tensor::empty(x.shape(), DType::f32, x.device());
  Tensor mask;
  if (needs_grad({x})) mask = Tensor::empty(x.shape(), DType::u8, x.device());
  dropout_stub[x.device()](x, y, mask, gen, base, pf, scale);
  return record("dropout", y, {x}, [mask, scale](const Tensor& dy, Grads& g) {
    Tensor dx = Tensor::empty(dy.shape(), DType::f32, dy.device());
    dropout_backward_stub[dy.device()](dy, mask, scale, dx);
    g.set(0, dx);
  });
}

}  // namespace lowbit
