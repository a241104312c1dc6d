// BatchNorm1d / BatchNorm2d with torch.nn's names: weight, bias, running_mean, running_var,
// num_batches_tracked (an i64 scalar, so state_dict keys match PyTorch's).
#pragma once

#include <optional>

#include "module.h"

namespace lowbit {

class BatchNormBase : public Module {
 public:
  // momentum nullopt means a cumulative average (1 / num_batches_tracked), as PyTorch's None.
  BatchNormBase(const char* type_name, int64_t num_features, double eps, std::optional<double> momentum,
                bool affine, bool track_running_stats);
  // Training (or no running stats): batch statistics, and when tracking, running stats and
  // num_batches_tracked are updated. Eval with running stats: those are used.
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)) as one fused op (same values, gradients and running-stat updates).
  Tensor forward_relu(const Tensor& x);

  Tensor weight() const { return parameter("weight"); }  // undefined unless affine
  Tensor bias() const { return parameter("bias"); }
  Tensor running_mean() const { return buffer("running_mean"); }  // undefined unless tracking
  Tensor running_var() const { return buffer("running_var"); }
  Tensor num_batches_tracked() const { return buffer("num_batches_tracked"); }
  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  std::optional<double> momentum() const { return momentum_; }
  // nullopt: cumulative average. BatchNorm re-estimation switches to it for the pass.
  void set_momentum(std::optional<double> m) { momentum_ = m; }
  // running_mean = 0, running_var = 1, num_batches_tracked = 0 (PyTorch's reset_running_stats).
  void reset_running_stats();

 protected:
  virtual void check_input(const Tensor& x) const = 0;

 private:
  Tensor run(const Tensor& x, bool relu);

  int64_t num_features_;
  double eps_;
  std::optional<double> momentum_;
};

// Input [N, C] or [N, C, L].
class BatchNorm1d : public BatchNormBase {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNormBase("BatchNorm1d", num_features, eps, momentum, affine, track_running_stats) {}

 protected:
  void check_input(const Tensor& x) const override;
};

// Input [N, C, H, W].
class BatchNorm2d : public BatchNormBase {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true)
      : BatchNormBase("BatchNorm2d", num_features, eps, momentum, affine, track_running_stats) {}

 protected:
  void check_input(const Tensor& x) const override;
};

}  // namespace lowbit
