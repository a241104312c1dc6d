// evaluate and count_topk.
#include "evaluate.h"

#include "../core/autograd.h"
#include "../core/ops/loss.h"

namespace lowbit {

int64_t count_topk(const Tensor& logits, const Tensor& labels, int64_t k) {
  const int64_t b = logits.shape()[0], c = logits.shape()[1];
  const float* z = logits.data<float>();
  const int64_t* y = labels.data<int64_t>();
  int64_t hits = 0;
  for (int64_t i = 0; i < b; ++i) {
    const float* row = z + i * c;
    const float target = row[y[i]];
    int64_t above = 0;
    for (int64_t j = 0; j < c; ++j) above += row[j] > target;
    hits += above < k;
  }
  return hits;
}

EvalResult evaluate(Module& model, DataLoader& loader) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  loader.begin_epoch(0);
  CrossEntropyOptions sum_opt;
  sum_opt.reduction = Reduction::sum;
  for (Batch b; loader.next(b);) {
    Tensor logits = model.forward(b.images);
    loss_sum += cross_entropy(logits, b.labels, sum_opt).item();
    top1 += count_topk(logits, b.labels, 1);
    top5 += count_topk(logits, b.labels, 5);
    r.samples += b.labels.numel();
  }
  model.train(was_training);
  if (r.samples > 0) {
    r.loss = loss_sum / double(r.samples);
    r.top1 = double(top1) / double(r.samples);
    r.top5 = double(top5) / double(r.samples);
  }
  return r;
}

}  // namespace lowbit
