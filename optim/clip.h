// Gradient clipping by the global 2-norm (torch.nn.utils.clip_grad_norm_).
#pragma once

#include <vector>

#include "optimizer.h"

namespace lowbit {

// total = sqrt(sum over params of sum g^2), accumulated in double; when
// max_norm / (total + 1e-6) < 1 every grad is multiplied by that factor in place.
// Params without a grad are skipped. Returns total, the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
double clip_grad_norm(const NamedTensors& params, double max_norm);
// Every parameter of the optimizer.
double clip_grad_norm(const Optimizer& optimizer, double max_norm);

}  // namespace lowbit
