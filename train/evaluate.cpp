// evaluate, count_topk and topk_hits.
#include "evaluate.h"

#include <cmath>

#include "../core/autograd.h"
#include "../core/ops/elementwise.h"
#include "../core/ops/loss.h"
#include "../core/ops/reduce.h"
#include "../core/ops/shape_ops.h"

namespace lowbit {

namespace {

void check_topk_args(const Tensor& logits, const Tensor& labels, const char* where) {
  LOWBIT_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0), where,
               "expected logits [B, C] and labels [B], got ", shape_str(logits.shape()), " and ",
               shape_str(labels.shape()));
}

}  // namespace

int64_t count_topk(const Tensor& logits, const Tensor& labels, int64_t k) {
  check_topk_args(logits, labels, "count_topk");
  if (!logits.device().is_cpu()) return static_cast<int64_t>(std::llround(topk_hits(logits, labels, k).item()));
  const int64_t b = logits.shape()[0], c = logits.shape()[1];
  const float* z = logits.data<float>();
  const int64_t* y = labels.data<int64_t>();
  int64_t hits = 0;
  for (int64_t i = 0; i < b; ++i) {
    const float* row = z + i * c;
    const float target = row[y[i]];
    int64_t above = 0;
    for (int64_t j = 0; j < c; ++j) above += row[j] > target || std::isnan(row[j]);
    hits += above < k && !std::isnan(target);
  }
  return hits;
}

// above[i] = #{j : z[i, j] > z[i, y[i]] or z[i, j] is NaN}, hits = #{i : above[i] < k and z[i, y[i]] is
// not NaN}: count_topk's rule. NaN ranks above every number (as in torch.topk), and a NaN target is
// never a hit, so a model whose logits overflow scores 0, not 100%.
Tensor topk_hits(const Tensor& logits, const Tensor& labels, int64_t k) {
  check_topk_args(logits, labels, "topk_hits");
  NoGradGuard no_grad;
  const Tensor z = logits.detach();
  const int64_t b = z.size(0);
  if (b == 0) return Tensor::zeros({}, DType::f32, z.device());
  Tensor target = gather(z, 1, labels.reshape({b, 1}));                          // [B, 1]
  Tensor above = add(sum(cast(gt(z, target), DType::f32), {1}),                  // [B], exact counts
                     sum(cast(ne(z, z), DType::f32), {1}));
  Tensor kth = Tensor::full({}, double(k), DType::f32, z.device());
  Tensor valid = cast(eq(target, target), DType::f32).reshape({b});              // 0 where the target is NaN
  return sum(mul(cast(lt(above, kth), DType::f32), valid));                      // [] exact below 2^24
}

EvalResult evaluate(Module& model, DataLoader& loader) {
  const Device device = loader.options().device;
  LOWBIT_CHECK(model.device() == device, "evaluate", "the model is on ", model.device().str(),
               " but the loader delivers batches on ", device.str(), " (move one with .to())");
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  Tensor dev_loss, dev_top1, dev_top5;  // device runs: sums kept on the device
  loader.begin_epoch(0);
  CrossEntropyOptions sum_opt;
  sum_opt.reduction = Reduction::sum;
  for (Batch b; loader.next(b);) {
    Tensor logits = model.forward(b.images);
    Tensor loss = cross_entropy(logits, b.labels, sum_opt);
    r.samples += b.labels.numel();
    if (device.is_cpu()) {
      loss_sum += loss.item();
      top1 += count_topk(logits, b.labels, 1);
      top5 += count_topk(logits, b.labels, 5);
      continue;
    }
    Tensor h1 = topk_hits(logits, b.labels, 1), h5 = topk_hits(logits, b.labels, 5);
    dev_loss = dev_loss.defined() ? add(dev_loss, loss) : loss;
    dev_top1 = dev_top1.defined() ? add(dev_top1, h1) : h1;
    dev_top5 = dev_top5.defined() ? add(dev_top5, h5) : h5;
  }
  if (dev_loss.defined()) {
    loss_sum = dev_loss.item();
    top1 = static_cast<int64_t>(std::llround(dev_top1.item()));
    top5 = static_cast<int64_t>(std::llround(dev_top5.item()));
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
