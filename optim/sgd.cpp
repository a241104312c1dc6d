// SGD: options checks and the per-parameter update through the optimizer kernels
// (core/kernels/optim.h: one fused pass per parameter, arithmetic in double per element).
#include "sgd.h"

#include <cmath>

#include "../core/dispatch.h"
#include "../core/kernels/optim.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(SgdUpdateKernel, sgd_update_stub, cpu::sgd_update, LOWBIT_CUDA_KERNEL(cuda::sgd_update));

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
  SgdStep st;
  st.lr = group.lr;
  st.weight_decay = group.weight_decay;
  st.momentum = options_.momentum;
  st.damp = 1 - options_.dampening;
  st.nesterov = options_.nesterov;
  Tensor buf;
  if (st.momentum > 0) {
    auto it = s.buffers.find("momentum_buffer");
    if (it == s.buffers.end()) {
      it = s.buffers.emplace("momentum_buffer", Tensor::zeros(p.shape(), DType::f32, p.device())).first;
      st.first = true;
    } else if (it->second.device() != p.device()) {
      it->second = it->second.to(p.device());  // the parameter moved (Module::to): its state follows
    }
    buf = it->second;
  }
  sgd_update_stub[p.device()](p, g, buf, st);
}

}  // namespace lowbit
