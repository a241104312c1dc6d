// Batch norm as one fused op: statistics, normalisation and affine in the forward, and
// the fused backward right beside it.
#include "batch_norm.h"

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/batch_norm.h"
#include "elementwise.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(BatchNormStatsKernel, batch_norm_stats_stub, cpu::batch_norm_stats,
                     LOWBIT_CUDA_KERNEL(cuda::batch_norm_stats));
LOWBIT_DISPATCH_STUB(BatchNormApplyKernel, batch_norm_apply_stub, cpu::batch_norm_apply,
                     LOWBIT_CUDA_KERNEL(cuda::batch_norm_apply));
LOWBIT_DISPATCH_STUB(BatchNormBackwardKernel, batch_norm_backward_stub, cpu::batch_norm_backward,
                     LOWBIT_CUDA_KERNEL(cuda::batch_norm_backward));

namespace {

// An optional per-channel tensor must be f32 [C] on x's device.
void check_channel_tensor(const Tensor& t, const char* what, const Tensor& x) {
  if (!t.defined()) return;
  const int64_t c = x.size(1);
  LOWBIT_CHECK(t.dtype() == DType::f32 && t.dim() == 1 && t.size(0) == c, "batch_norm", what, " must be f32 [", c,
               "] for input ", shape_str(x.shape()), ", got ", dtype_name(t.dtype()), " ", shape_str(t.shape()));
  LOWBIT_CHECK(t.device() == x.device(), "batch_norm", what, " is on ", t.device().str(), " but the input is on ",
               x.device().str());
}

// Forward (c = axis 1, M = elements per channel):
//   training: mean, invstd = 1/sqrt(biased var + eps) from the batch; eval: from the running stats.
//   y = (x - mean) * invstd * w + b
// Backward with xhat = (x - mean) * invstd:
//   training: dx = w invstd / M (M dy - sum(dy) - xhat sum(dy xhat))   (mean, var depend on x)
//   eval:     dx = dy w invstd
//   dw = sum(dy xhat), db = sum(dy)
// Saved: x, mean and invstd ([C]); xhat is rebuilt from them inside the backward pass, which
// costs no extra pass, whereas saving xhat would cost a second x-sized buffer.
// batch_norm, followed by a ReLU when `relu`: y = max(bn(x), 0), and backward feeds the BN
// backward dy * [y > 0]. Saved in addition: y itself (which the next layer keeps anyway).
Tensor batch_norm_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, const BatchNormOptions& opt, bool relu) {
  LOWBIT_CHECK(x.dtype() == DType::f32, "batch_norm", "needs an f32 input, got ", dtype_name(x.dtype()), " ",
               shape_str(x.shape()));
  LOWBIT_CHECK(x.dim() >= 2, "batch_norm", "expects an [N, C, ...] input, got ", shape_str(x.shape()));
  check_channel_tensor(weight, "weight", x);
  check_channel_tensor(bias, "bias", x);
  check_channel_tensor(running_mean, "running_mean", x);
  check_channel_tensor(running_var, "running_var", x);
  LOWBIT_CHECK(running_mean.defined() == running_var.defined(), "batch_norm",
               "running_mean and running_var must be given together (input ", shape_str(x.shape()), ")");
  LOWBIT_CHECK(opt.eps > 0, "batch_norm", "eps must be positive, got ", opt.eps);
  const int64_t c = x.size(1);
  const int64_t per_channel = c > 0 ? x.numel() / c : 0;

  Tensor mean, invstd;
  if (opt.training) {
    LOWBIT_CHECK(per_channel > 1, "batch_norm", "training needs more than one value per channel, got input ",
                 shape_str(x.shape()));
    mean = Tensor::empty({c}, DType::f32, x.device());
    invstd = Tensor::empty({c}, DType::f32, x.device());
    Tensor rm = running_mean, rv = running_var;  // updated in place by the kernel, never recorded
    batch_norm_stats_stub[x.device()](x, opt.eps, opt.momentum, rm, rv, mean, invstd);
  } else {
    LOWBIT_CHECK(running_mean.defined(), "batch_norm", "eval mode needs running_mean and running_var (input ",
                 shape_str(x.shape()), ")");
    // Copies: the buffers may be updated by a later training forward before this backward runs.
    NoGradGuard ng;
    mean = running_mean.detach().clone();
    invstd = pow(add(running_var.detach(), opt.eps), -0.5);
  }
  Tensor y = Tensor::empty(x.shape(), DType::f32, x.device());
  batch_norm_apply_stub[x.device()](x, mean, invstd, weight, bias, relu, y);

  const bool training = opt.training;
  const Tensor relu_out = relu ? y : Tensor();
  return record(relu ? "batch_norm_relu" : "batch_norm", y, {x, weight, bias},
                [training, x, mean, invstd, weight, relu_out](const Tensor& dy, Grads& g) {
                  Tensor dx, dw, db;
                  if (g.wants(0)) dx = Tensor::empty(x.shape(), DType::f32, dy.device());
                  if (g.wants(1)) dw = Tensor::empty(weight.shape(), DType::f32, dy.device());
                  if (g.wants(2)) db = Tensor::empty({x.size(1)}, DType::f32, dy.device());
                  batch_norm_backward_stub[dy.device()](training, dy, x, mean, invstd, weight, relu_out, dx, dw, db);
                  g.set(0, dx);
                  g.set(1, dw);
                  g.set(2, db);
                });
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& opt) {
  return batch_norm_impl(x, weight, bias, running_mean, running_var, opt, false);
}

// relu(batch_norm(x)) in one pass each way: dx, dw, db are batch_norm's gradients for the
// incoming gradient dy * [y > 0].
Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, const BatchNormOptions& opt) {
  return batch_norm_impl(x, weight, bias, running_mean, running_var, opt, true);
}

}  // namespace lowbit
