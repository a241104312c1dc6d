// ste_uniform: DoReFa-style uniform quantizer with a max-abs step and the clipped straight-through estimator.
#pragma once

#include "../core/autograd.h"
#include "quantizer.h"

namespace lowbit {

// y = alpha * clamp(round(x / alpha), qmin, qmax).
// Pretended gradient (straight through inside the clamp range, zero outside):
//   dL/dx = dL/dy if qmin <= x / alpha <= qmax, else 0.   alpha gets none.
// alpha: f32 [] or [C] (per channel along dim 0), detached.
class SteUniformSte : public CustomFunction {
 public:
  SteUniformSte(Tensor alpha, GridRange range) : alpha_(std::move(alpha)), range_(range) {}
  std::string name() const override { return "ste_uniform_ste"; }
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& dy) override;
  void release() override { x_ = Tensor(); }

 private:
  Tensor alpha_, x_;
  GridRange range_;
};

// Weights: alpha = max|w| / qmax, recomputed from the current weights at every forward (so it
// tracks training) and per channel with per_channel. Activations: alpha fixed at calibration,
// from the observed |x|: act_init "max" (largest) or "percentile" (act_percentile, default
// 99.99) divided by qmax. A 1-bit rq grid {-1, 0} has qmax 0 and divides by 1 instead.
// State: buffer "alpha" ([] or [C]).
class SteUniformQuantizer : public Quantizer {
 public:
  explicit SteUniformQuantizer(const QuantSpec& spec);
  static QuantizerCapabilities capabilities();

  void init_from(const Tensor& x) override;
  Tensor step() const override { return buffer("alpha"); }
  IntTensor export_int(const Tensor& x) const override;

 protected:
  Tensor quantize(const Tensor& x) override;

 private:
  // The step the forward uses for x: from x itself for weights, the calibrated one for activations.
  Tensor alpha_for(const Tensor& x) const;
};

}  // namespace lowbit
