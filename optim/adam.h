// Adam (L2 weight decay added to the gradient) and AdamW (decoupled decay), torch.optim 1.13.
#pragma once

#include "optimizer.h"

namespace lowbit {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;  // each in [0, 1)
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
};

// AdamW's options; the only difference is torch's default weight_decay of 1e-2.
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 1e-2; }
};

// With t the parameter's step count after incrementing:
//   (Adam) g += wd*p        (AdamW) p *= 1 - lr*wd
//   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  (amsgrad) vmax = max(vmax, v), v := vmax
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
// State: exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad only), step.
class Adam : public Optimizer {
 public:
  Adam(NamedTensors params, const AdamOptions& options, const std::vector<ParamGroupSpec>& groups = {});
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(std::string kind, NamedTensors params, const AdamOptions& options,
       const std::vector<ParamGroupSpec>& groups, bool decoupled);
  void update(const ParamGroup& group, Tensor& p, const Tensor& g, ParamState& s) override;
  std::vector<std::string> buffer_names() const override;
  bool counts_steps() const override { return true; }

 private:
  AdamOptions options_;
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(NamedTensors params, const AdamWOptions& options = {},
        const std::vector<ParamGroupSpec>& groups = {});
};

}  // namespace lowbit
