// SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD 1.13).
#pragma once

#include "optimizer.h"

namespace lowbit {

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0;   // in [0, 1)
  double dampening = 0;  // in [0, 1]; must be 0 with nesterov
  bool nesterov = false;
  double weight_decay = 0;
};

// d = g + wd*p; buf = d on the first step, else momentum*buf + (1-dampening)*d;
// d = nesterov ? d + momentum*buf : buf (when momentum > 0); p -= lr*d.
// State: momentum_buffer (only when momentum > 0).
class SGD : public Optimizer {
 public:
  SGD(NamedTensors params, const SgdOptions& options, const std::vector<ParamGroupSpec>& groups = {});
  const SgdOptions& options() const { return options_; }

 protected:
  void update(const ParamGroup& group, Tensor& p, const Tensor& g, ParamState& s) override;
  std::vector<std::string> buffer_names() const override;
  bool counts_steps() const override { return false; }

 private:
  SgdOptions options_;
};

}  // namespace lowbit
