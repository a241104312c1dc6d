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
// restores the model's previous mode.
EvalResult evaluate(Module& model, DataLoader& loader);

// Hits among the top-k logits of each row of `logits` [B, C] for `labels` [B]; ties count
// in the label's favour only when strictly fewer than k logits exceed it.
int64_t count_topk(const Tensor& logits, const Tensor& labels, int64_t k);

}  // namespace lowbit
