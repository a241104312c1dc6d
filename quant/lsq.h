// lsq: Learned Step Size Quantization (Esser et al., ICLR 2020) with a softplus-parametrised step.
#pragma once

#include "../core/autograd.h"
#include "quantizer.h"

namespace lowbit {

// y = alpha * clamp(round(x / alpha), qmin, qmax), alpha = softplus(alpha_raw) ([] or [C]).
// Pretended gradients (LSQ eq. 3 and the gradient scale g of section 2.2):
//   dL/dx     = dL/dy                          if qmin <= x/alpha <= qmax, else 0
//   dL/dalpha = g * sum dL/dy * { round(x/alpha) - x/alpha   inside
//                               { qmin                       x/alpha < qmin
//                               { qmax                       x/alpha > qmax
//   g = 1 / sqrt(N * Qp), Qp = max(qmax, 1), N = elements per step (per channel slice for
//   per-channel weights; features per example for activations).
//   dL/dalpha_raw = dL/dalpha * sigmoid(alpha_raw).
// Inputs {x, alpha_raw}.
class LsqSte : public CustomFunction {
 public:
  LsqSte(GridRange range, double grad_scale) : range_(range), grad_scale_(grad_scale) {}
  std::string name() const override { return "lsq_ste"; }
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& dy) override;
  void release() override { x_ = raw_ = alpha_ = Tensor(); }

 private:
  GridRange range_;
  double grad_scale_;
  Tensor x_, raw_, alpha_;
};

// The step alpha as used by the forward: float(softplus(raw)) per element of raw.
Tensor lsq_alpha(const Tensor& alpha_raw);

// Parameter "alpha_raw" ([] or [C]); init alpha = 2 * mean|x| / sqrt(Qp) (LSQ section 2.1),
// weights at build time / after a float checkpoint load, activations from the calibration
// sample. Option `grad_scale: false` turns g off (g = 1), for the ablation.
class LsqQuantizer : public Quantizer {
 public:
  explicit LsqQuantizer(const QuantSpec& spec);
  static QuantizerCapabilities capabilities();

  void init_from(const Tensor& x) override;
  Tensor step() const override { return lsq_alpha(parameter("alpha_raw")); }

 protected:
  Tensor quantize(const Tensor& x) override;
};

}  // namespace lowbit
