// Adam / AdamW: options checks, bias corrections on the host, and the per-parameter update
// through the optimizer kernels (core/kernels/optim.h: one fused pass, double per element).
#include "adam.h"

#include <cmath>

#include "../core/dispatch.h"
#include "../core/kernels/optim.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(AdamUpdateKernel, adam_update_stub, cpu::adam_update, LOWBIT_CUDA_KERNEL(cuda::adam_update));

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
    if (it == s.buffers.end()) it = s.buffers.emplace(name, Tensor::zeros(p.shape(), DType::f32, p.device())).first;
    // The parameter moved since (Module::to moves parameters in place): its state follows.
    if (it->second.device() != p.device()) it->second = it->second.to(p.device());
    return it->second;
  };
  Tensor m = buffer("exp_avg");
  Tensor v = buffer("exp_avg_sq");
  Tensor vmax = options_.amsgrad ? buffer("max_exp_avg_sq") : Tensor();
  const int64_t t = ++s.step;
  const double lr = group.lr, wd = group.weight_decay;
  AdamStep st;
  st.beta1 = options_.beta1;
  st.beta2 = options_.beta2;
  st.eps = options_.eps;
  st.step_size = lr / (1 - std::pow(st.beta1, static_cast<double>(t)));
  st.bc2_sqrt = std::sqrt(1 - std::pow(st.beta2, static_cast<double>(t)));
  st.l2 = decoupled_ ? 0 : wd;
  st.shrink = decoupled_ ? 1 - lr * wd : 1;
  adam_update_stub[p.device()](p, g, m, v, vmax, st);
}

}  // namespace lowbit
