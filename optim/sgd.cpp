// SGD's fused in-place update: one pass over each parameter, arithmetic in double per element.
#include "sgd.h"

#include <cmath>

#include "../core/parallel.h"

namespace lowbit {

SGD::SGD(NamedTensors params, const SgdOptions& o, const std::vector<ParamGroupSpec>& groups)
    : Optimizer("SGD", std::move(params), o.lr, o.weight_decay, groups), options_(o) {
  check_arg(std::isfinite(o.momentum) && o.momentum >= 0 && o.momentum < 1, "momentum", o.momentum, "in [0, 1)");
  check_arg(std::isfinite(o.dampening) && o.dampening >= 0 && o.dampening <= 1, "dampening", o.dampening,
            "in [0, 1]");
  check_arg(!o.nesterov || o.momentum > 0, "momentum", o.momentum, "> 0 with nesterov");
  check_arg(!o.nesterov || o.dampening == 0, "dampening", o.dampening, "0 with nesterov");
}

std::vector<std::string> SGD::buffer_names() const {
  if (options_.momentum > 0) return {"momentum_buffer"};
  return {};
}

void SGD::update(const ParamGroup& group, Tensor& p, const Tensor& g, ParamState& s) {
  const double lr = group.lr, wd = group.weight_decay, mom = options_.momentum;
  const double damp = 1 - options_.dampening;
  const bool nesterov = options_.nesterov;
  float* pp = p.data<float>();
  const float* gp = g.data<float>();
  float* bp = nullptr;
  bool first = false;
  if (mom > 0) {
    auto it = s.buffers.find("momentum_buffer");
    if (it == s.buffers.end()) {
      it = s.buffers.emplace("momentum_buffer", Tensor::zeros(p.shape())).first;
      first = true;
    }
    bp = it->second.data<float>();
  }
  parallel_for(p.numel(), kOptimGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double d = static_cast<double>(gp[i]) + wd * pp[i];
      if (bp) {
        double buf = first ? d : mom * bp[i] + damp * d;
        bp[i] = static_cast<float>(buf);
        d = nesterov ? d + mom * bp[i] : static_cast<double>(bp[i]);
      }
      pp[i] = static_cast<float>(pp[i] - lr * d);
    }
  });
}

}  // namespace lowbit
