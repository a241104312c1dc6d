// evaluate: loss, top-1 and top-5 accuracy of a model over a data loader's epoch.
#pragma once

#include <cstdint>

#include "../data/loader.h"
#include "../layers/module.h"

namespace lowbit {

struct EvalResult {
  double loss = 0;  // mean cross entropy
  double top1 = 0;  // fractions in [0, 1]
  double top5 = 0;  // with fewer than 5 classes, every sample counts as a top-5 hit
  int64_t samples = 0;
};

// Runs the model in eval mode without gradients over one epoch of `loader` (epoch 0), then
// restores the model's previous mode. The model must be on the loader's device; on a GPU the
// sums stay on the device until the end (one wait per evaluation, not per batch).
EvalResult evaluate(Module& model, DataLoader& loader);

// Hits among the top-k logits of each row of `logits` [B, C] for `labels` [B]; ties count
// in the label's favour only when strictly fewer than k logits exceed it. Any device (a
// device tensor is read back: one wait).
int64_t count_topk(const Tensor& logits, const Tensor& labels, int64_t k);

// The same count as an f32 scalar on the logits' device, computed with ops (gather,
// comparisons, sums), so nothing waits for the device. Not recorded for autograd.
Tensor topk_hits(const Tensor& logits, const Tensor& labels, int64_t k);

}  // namespace lowbit
