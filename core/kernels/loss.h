// Loss kernels (class-index losses): the interface each backend implements.
#pragma once

#include "../tensor.h"

namespace lowbit {

// Every kernel views its f32 scores as [N, C, inner] (C the class axis) and the target
// (i64 or i32) as [N, inner].

// Where the first target outside [0, C) that is not ignore_index lies (flat index into
// target, -1 when none), and how many targets are not ignore_index.
struct TargetScan {
  int64_t first_bad = -1;
  int64_t valid = 0;
};
using TargetScanKernel = TargetScan(const Tensor& target, int64_t classes, int64_t ignore_index);

// With lse = logsumexp over C and eps the label smoothing:
// loss = (1 - eps) * (lse - x[t]) + eps * (lse - mean_c x[c]), 0 where t is ignored.
// loss and lse are f32 [N * inner]; lse is what the backward reads.
using CrossEntropyKernel = void(const Tensor& logits, const Tensor& target, int64_t ignore_index, float smoothing,
                                Tensor& loss, Tensor& lse);
// dx = g * (exp(x - lse) - (1 - eps) * onehot(t) - eps / C), 0 where t is ignored;
// g is dloss per sample ([N * inner]) or one value for all (numel 1).
using CrossEntropyBackwardKernel = void(const Tensor& dloss, const Tensor& logits, const Tensor& target,
                                        const Tensor& lse, int64_t ignore_index, float smoothing, Tensor& dx);
// loss = -log_probs[t] per sample ([N * inner]), 0 where t is ignored.
using NllLossKernel = void(const Tensor& log_probs, const Tensor& target, int64_t ignore_index, Tensor& loss);
// dx (log_probs' shape) = -g at each target, 0 elsewhere; g as in CrossEntropyBackwardKernel.
using NllLossBackwardKernel = void(const Tensor& dloss, const Tensor& target, int64_t ignore_index, Tensor& dx);

namespace cpu {
TargetScanKernel scan_targets;
CrossEntropyKernel cross_entropy;
CrossEntropyBackwardKernel cross_entropy_backward;
NllLossKernel nll_loss;
NllLossBackwardKernel nll_loss_backward;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
TargetScanKernel scan_targets;
CrossEntropyKernel cross_entropy;
CrossEntropyBackwardKernel cross_entropy_backward;
NllLossKernel nll_loss;
NllLossBackwardKernel nll_loss_backward;
}  // namespace cuda

}  // namespace lowbit
