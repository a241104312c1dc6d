// Losses: forward through fused kernels, backward right beside each.
#include "loss.h"

#include <sstream>

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/loss.h"
#include "elementwise.h"
#include "reduce.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(TargetScanKernel, scan_targets_stub, cpu::scan_targets, LOWBIT_CUDA_KERNEL(cuda::scan_targets));
LOWBIT_DISPATCH_STUB(CrossEntropyKernel, cross_entropy_stub, cpu::cross_entropy,
                     LOWBIT_CUDA_KERNEL(cuda::cross_entropy));
LOWBIT_DISPATCH_STUB(CrossEntropyBackwardKernel, cross_entropy_backward_stub, cpu::cross_entropy_backward,
                     LOWBIT_CUDA_KERNEL(cuda::cross_entropy_backward));
LOWBIT_DISPATCH_STUB(NllLossKernel, nll_loss_stub, cpu::nll_loss, LOWBIT_CUDA_KERNEL(cuda::nll_loss));
LOWBIT_DISPATCH_STUB(NllLossBackwardKernel, nll_loss_backward_stub, cpu::nll_loss_backward,
                     LOWBIT_CUDA_KERNEL(cuda::nll_loss_backward));

namespace {

// Scores as [N, C, ...] and the target as [N, ...], checked; `sample_shape` is the shape
// of the unreduced loss (the target's own shape).
struct ClassProblem {
  Tensor scores, target;
  Shape sample_shape;
  int64_t valid = 0;  // targets that are not ignore_index
};

std::string index_str(int64_t flat, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(idx);
}

ClassProblem class_problem(const char* op, const Tensor& scores, const Tensor& target, int64_t ignore_index) {
  LOWBIT_CHECK(scores.dtype() == DType::f32, op, "needs f32 scores, got ", dtype_name(scores.dtype()), " ",
               shape_str(scores.shape()));
  LOWBIT_CHECK(target.dtype() == DType::i64 || target.dtype() == DType::i32, op,
               "needs class-index targets of dtype i64 or i32, got ", dtype_name(target.dtype()), " ",
               shape_str(target.shape()));
  LOWBIT_CHECK(scores.device() == target.device(), op, "scores on ", scores.device().str(), ", target on ",
               target.device().str());
  LOWBIT_CHECK(scores.dim() >= 1, op, "needs scores of shape [N, C, ...] or [C], got ", shape_str(scores.shape()));
  Shape expected = scores.shape();
  expected.erase(expected.begin() + (scores.dim() == 1 ? 0 : 1));
  LOWBIT_CHECK(target.shape() == expected, op, "target of shape ", shape_str(target.shape()),
               " does not match scores of shape ", shape_str(scores.shape()), " (expected target shape ",
               shape_str(expected), ")");
  const int64_t classes = scores.shape()[scores.dim() == 1 ? 0 : 1];
  LOWBIT_CHECK(classes > 0, op, "scores of shape ", shape_str(scores.shape()), " have no classes");

  ClassProblem p;
  p.sample_shape = target.shape();
  p.scores = scores.dim() == 1 ? scores.reshape({1, classes}) : scores;
  p.target = scores.dim() == 1 ? target.reshape({1}) : target;
  const TargetScan scan = scan_targets_stub[target.device()](p.target, classes, ignore_index);
  if (scan.first_bad >= 0) {
    std::ostringstream os;
    os << "target " << static_cast<int64_t>(p.target.reshape({-1}).at({scan.first_bad})) << " at position "
       << index_str(scan.first_bad, target.shape()) << " is outside [0, " << classes << ") for scores of shape "
       << shape_str(scores.shape()) << " (and is not ignore_index " << ignore_index << ")";
    throw Error(os.str(), op);
  }
  p.valid = scan.valid;
  return p;
}

// Combines the per-sample losses; also gives the backward's gradient of each sample's
// loss from the output's gradient (per sample for none, one shared value otherwise).
Tensor reduce_samples(const Tensor& loss, const Shape& sample_shape, Reduction r, int64_t valid) {
  switch (r) {
    case Reduction::none: return loss.reshape(sample_shape);
    case Reduction::sum: return sum(loss);
    case Reduction::mean: break;
  }
  return div(sum(loss), static_cast<double>(valid));  // 0 / 0 = NaN when every sample is ignored
}

Tensor sample_grad(const Tensor& dy, Reduction r, int64_t valid) {
  return r == Reduction::mean ? mul(dy, 1.0 / static_cast<double>(valid)) : dy;
}

}  // namespace

// Per sample, with lse = logsumexp over classes:
//   l = (1 - eps) * (lse - x[t]) + eps * (lse - mean_c x[c]).
// dl/dx[c] = softmax(x)[c] - (1 - eps) * [c == t] - eps / C, scaled by the sample's dy
// (dy / valid for mean); ignored samples get zero.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options) {
  const double eps = options.label_smoothing;
  LOWBIT_CHECK(eps >= 0 && eps <= 1, "cross_entropy", "label_smoothing ", eps, " is outside [0, 1]");
  ClassProblem p = class_problem("cross_entropy", logits, target, options.ignore_index);
  const int64_t samples = p.target.numel();
  Tensor loss = Tensor::empty({samples}, DType::f32, logits.device());
  Tensor lse = Tensor::empty({samples}, DType::f32, logits.device());
  const float smoothing = static_cast<float>(eps);
  const int64_t ignore = options.ignore_index;
  cross_entropy_stub[logits.device()](p.scores, p.target, ignore, smoothing, loss, lse);
  Tensor y;
  {
    NoGradGuard ng;
    y = reduce_samples(loss, p.sample_shape, options.reduction, p.valid);
  }
  return record("cross_entropy", y, {p.scores},
                [x = p.scores.detach(), t = p.target, lse, ignore, smoothing, r = options.reduction,
                 valid = p.valid](const Tensor& dy, Grads& g) {
                  Tensor dx = Tensor::empty(x.shape(), DType::f32, x.device());
                  cross_entropy_backward_stub[x.device()](sample_grad(dy, r, valid).reshape({-1}), x, t, lse,
                                                          ignore, smoothing, dx);
                  g.set(0, dx);
                });
}

// Per sample l = -log_probs[t].  dl/dlog_probs = -1 at t, 0 elsewhere (times dy as above).
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NllLossOptions& options) {
  ClassProblem p = class_problem("nll_loss", log_probs, target, options.ignore_index);
  Tensor loss = Tensor::empty({p.target.numel()}, DType::f32, log_probs.device());
  const int64_t ignore = options.ignore_index;
  nll_loss_stub[log_probs.device()](p.scores, p.target, ignore, loss);
  Tensor y;
  {
    NoGradGuard ng;
    y = reduce_samples(loss, p.sample_shape, options.reduction, p.valid);
  }
  return record("nll_loss", y, {p.scores},
                [xs = p.scores.shape(), t = p.target, ignore, r = options.reduction, valid = p.valid](
                    const Tensor& dy, Grads& g) {
                  Tensor dx = Tensor::empty(xs, DType::f32, dy.device());
                  nll_loss_backward_stub[dy.device()](sample_grad(dy, r, valid).reshape({-1}), t, ignore, dx);
                  g.set(0, dx);
                });
}

// l = (a - b)^2 reduced.  da = 2 (a - b) * dy (/ n for mean), db = -da.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  LOWBIT_CHECK(input.shape() == target.shape(), "mse_loss", "input of shape ", shape_str(input.shape()),
               " and target of shape ", shape_str(target.shape()), " differ");
  LOWBIT_CHECK(input.dtype() == DType::f32 && target.dtype() == DType::f32, "mse_loss", "needs f32 tensors, got ",
               dtype_name(input.dtype()), " and ", dtype_name(target.dtype()));
  Tensor d, y;
  {
    NoGradGuard ng;
    d = sub(input, target);
    Tensor sq = mul(d, d);
    y = reduction == Reduction::none ? sq : reduction == Reduction::sum ? sum(sq) : mean(sq);
  }
  const double n = static_cast<double>(input.numel());
  return record("mse_loss", y, {input, target}, [d, reduction, n](const Tensor& dy, Grads& g) {
    const double k = reduction == Reduction::mean ? 2.0 / n : 2.0;
    Tensor da = mul(d, dy) * k;  // dy is a scalar unless reduction is none
    if (g.wants(0)) g.set(0, da);
    if (g.wants(1)) g.set(1, neg(da));
  });
}

}  // namespace lowbit
