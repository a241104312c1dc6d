// Losses: cross-entropy (fused with log_softmax), negative log-likelihood, mean squared error.
#pragma once

#include "../tensor.h"

namespace lowbit {

// How per-sample losses are combined: kept as they are, averaged or summed.
enum class Reduction { none, mean, sum };

struct CrossEntropyOptions {
  double label_smoothing = 0;  // eps in [0, 1]: the target becomes (1 - eps) * onehot + eps / C
  Reduction reduction = Reduction::mean;
  int64_t ignore_index = -100;  // samples with this target add nothing and are not counted by mean
};

struct NllLossOptions {
  Reduction reduction = Reduction::mean;
  int64_t ignore_index = -100;
};

// torch.nn.functional.cross_entropy with class-index targets. logits: f32 [N, C] or
// [N, C, d1, ...] (or [C] with a 0-d target); target: i64/i32 [N] or [N, d1, ...].
// Per sample: (1 - eps) * -log p[t] + eps * mean over classes of -log p[c]; mean divides
// by the number of targets that are not ignore_index (NaN when there are none). A target
// outside [0, C) that is not ignore_index is an Error naming its value and position.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options = {});

// torch.nn.functional.nll_loss: per sample -log_probs[t], shapes as in cross_entropy.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NllLossOptions& options = {});

// (input - target)^2, element-wise on equal shapes, then reduced.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

}  // namespace lowbit
