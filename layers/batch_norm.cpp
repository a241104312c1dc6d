// BatchNorm layers: running statistics bookkeeping around the fused batch_norm op.
#include "batch_norm.h"

#include <typeinfo>

#include "../core/ops/batch_norm.h"
#include "../core/ops/elementwise.h"

namespace lowbit {

BatchNormBase::BatchNormBase(const char* type_name, int64_t num_features, double eps,
                             std::optional<double> momentum, bool affine, bool track_running_stats)
    : Module(type_name), num_features_(num_features), eps_(eps), momentum_(momentum) {
  LOWBIT_CHECK(num_features > 0, type_name, "num_features must be positive, got ", num_features);
  if (affine) {
    register_parameter("weight", Tensor::ones({num_features}));
    register_parameter("bias", Tensor::zeros({num_features}));
  }
  if (track_running_stats) {
    register_buffer("running_mean", Tensor::zeros({num_features}));
    register_buffer("running_var", Tensor::ones({num_features}));
    register_buffer("num_batches_tracked", Tensor::zeros({}, DType::i64));
  }
}

Tensor BatchNormBase::forward(const Tensor& x) { return run(x, false); }
Tensor BatchNormBase::forward_relu(const Tensor& x) {
  // A subclass may override forward; then it runs, followed by a separate ReLU.
  if (typeid(*this) != typeid(BatchNorm2d) && typeid(*this) != typeid(BatchNorm1d)) return relu(forward(x));
  return run(x, true);
}

Tensor BatchNormBase::run(const Tensor& x, bool relu) {
  check_input(x);
  LOWBIT_CHECK(x.size(1) == num_features_, type_name(), "expected ", num_features_, " channels, got input ",
               shape_str(x.shape()));
  Tensor rm = running_mean(), rv = running_var();
  bool use_batch = is_training() || !rm.defined();
  BatchNormOptions opt;
  opt.eps = eps_;
  opt.training = use_batch;
  opt.momentum = momentum_.value_or(0.0);
  if (is_training() && rm.defined()) {
    Tensor nbt = num_batches_tracked();
    if (momentum_ && !nbt.device().is_cpu()) {
      // Counted on the device: reading it back would make every layer wait for the GPU.
      nbt.copy_(add(nbt, 1.0));
    } else {
      int64_t n = static_cast<int64_t>(nbt.item()) + 1;
      nbt.fill_(static_cast<double>(n));
      if (!momentum_) opt.momentum = 1.0 / static_cast<double>(n);
    }
  }
  // The op updates rm / rv only when opt.training, i.e. only while this module trains.
  return relu ? batch_norm_relu(x, weight(), bias(), rm, rv, opt) : batch_norm(x, weight(), bias(), rm, rv, opt);
}

void BatchNorm1d::check_input(const Tensor& x) const {
  LOWBIT_CHECK(x.dim() == 2 || x.dim() == 3, type_name(), "expected 2-D or 3-D input, got ", shape_str(x.shape()));
}

void BatchNorm2d::check_input(const Tensor& x) const {
  LOWBIT_CHECK(x.dim() == 4, type_name(), "expected 4-D input, got ", shape_str(x.shape()));
}

void BatchNormBase::reset_running_stats() {
  if (!running_mean().defined()) return;
  running_mean().fill_(0.0);
  running_var().fill_(1.0);
  num_batches_tracked().fill_(0.0);
}

}  // namespace lowbit
