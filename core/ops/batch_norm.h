// Batch normalisation over the channel axis of [N, C, ...] f32 tensors: one fused op.
#pragma once

#include "../tensor.h"

namespace lowbit {

struct BatchNormOptions {
  bool training = false;  // batch statistics (and a running-stat update) vs the running stats
  double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch statistic
  double eps = 1e-5;
};

// y = (x - mean) / sqrt(var + eps) * weight + bias per channel c = axis 1, as
// torch.nn.functional.batch_norm. weight and bias ([C]) may be undefined (1 and 0).
// Training: mean and the biased var come from the batch (over every axis but 1), and
// running_mean / running_var ([C], may both be undefined) are updated in place with the
// unbiased var; that update is never recorded by autograd. Eval: the running stats are used.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormOptions& opt = {});

// relu(batch_norm(...)) fused: the same values and gradients (the ReLU's derivative is 0 at
// 0), one pass over x forward and one backward instead of two each.
Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, const BatchNormOptions& opt = {});

}  // namespace lowbit
