// Adam / AdamW fused in-place update: one pass over each parameter, arithmetic in double per element.
#include "adam.h"

#include <algorithm>
#include <cmath>

#include "../core/parallel.h"

namespace lowbit {

Adam::Adam(NamedTensors params, const AdamOptions& o, const std::vector<ParamGroupSpec>& groups)
    : Adam("Adam", std::move(params), o, groups, false) {}

AdamW::AdamW(NamedTensors params, const AdamWOptions& o, const std::vector<ParamGroupSpec>& groups)
    : Adam("AdamW", std::move(params), o, groups, true) {}

Adam::Adam(std::string kind, NamedTensors params, const AdamOptions& o,
           const std::vector<ParamGroupSpec>& groups, bool decoupled)
    : Optimizer(std::move(kind), std::move(params), o.lr, o.weight_decay, groups), options_(o), decoupled_(decoupled) {
  check_arg(std::isfinite(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, "beta1", o.beta1, "in [0, 1)");
  check_arg(std::isfinite(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, "beta2", o.beta2, "in [0, 1)");
  check_arg(std::isfinite(o.eps) && o.eps >= 0, "eps", o.eps, "finite and >= 0");
}

std::vector<std::string> Adam::buffer_names() const {
  if (options_.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

void Adam::update(const ParamGroup& group, Tensor& p, const Tensor& g, ParamState& s) {
  auto buffer = [&](const char* name) {
    auto it = s.buffers.find(name);
    if (it == s.buffers.end()) it = s.buffers.emplace(name, Tensor::zeros(p.shape())).first;
    return it->second.data<float>();
  };
  float* m = buffer("exp_avg");
  float* v = buffer("exp_avg_sq");
  float* vmax = options_.amsgrad ? buffer("max_exp_avg_sq") : nullptr;
  const int64_t t = ++s.step;
  const double lr = group.lr, wd = group.weight_decay, b1 = options_.beta1, b2 = options_.beta2;
  const double eps = options_.eps;
  const double step_size = lr / (1 - std::pow(b1, static_cast<double>(t)));
  const double bc2_sqrt = std::sqrt(1 - std::pow(b2, static_cast<double>(t)));
  const double l2 = decoupled_ ? 0 : wd, shrink = decoupled_ ? 1 - lr * wd : 1;
  float* pp = p.data<float>();
  const float* gp = g.data<float>();
  parallel_for(p.numel(), kOptimGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double w = pp[i] * shrink;
      double gi = gp[i] + l2 * pp[i];
      m[i] = static_cast<float>(b1 * m[i] + (1 - b1) * gi);
      v[i] = static_cast<float>(b2 * v[i] + (1 - b2) * gi * gi);
      double vi = v[i];
      if (vmax) {
        vmax[i] = std::max(vmax[i], v[i]);
        vi = vmax[i];
      }
      pp[i] = static_cast<float>(w - step_size * m[i] / (std::sqrt(vi) / bc2_sqrt + eps));
    }
  });
}

}  // namespace lowbit
