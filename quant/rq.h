// rq: Relaxed Quantization (Louizos, Reisser, Blankevoort, Gavves, Welling, ICLR 2019), the
// parent of SRQ/CPQ and a baseline. Follows QUANTIZERS.md "rq": logistic noise of scale sigma
// around x, one bin of width alpha per grid point (eq. 2), the distribution truncated to the
// grid and renormalised (eq. 3), a concrete / Gumbel-softmax sample at temperature lambda
// (eq. 5-6), the RQ-ST variant (hard sample forward, concrete gradient backward), a local
// window of +-3 sigma for b > 4, and round-to-nearest at eval.
#pragma once

#include "../core/autograd.h"
#include "../core/rng.h"
#include "cpq.h"
#include "kernels/cpq.h"
#include "quantizer.h"

namespace lowbit {

// Inputs {x, alpha_raw, sigma_raw} (alpha = map(alpha_raw) as in cpq.h, [] or [C] along dim 0).
// Per element, over the window bins W (all codes for b <= 4, else |k - k_nearest| <= ceil(3 sigma/alpha)):
//   pi_k = r_k / sum_W r,  a_k = log pi_k + G_k (G_k Gumbel from the generator),  z = softmax(a / lambda)
//   soft:  x_hat = alpha sum_k z_k c_k          ST: x_hat = alpha c_{argmax a}
// Backward (both; the ST variant pretends the soft sample's gradient):
//   dL/da_k = dy z_k (alpha c_k - x_soft) / lambda,  dL/dtheta = sum_k dL/da_k d log r_k/dtheta
//   (the log R term cancels: sum_k dL/da_k = 0), plus dL/dalpha += dy sum_k z_k c_k.
// The Gumbel draws are regenerated in backward from the saved counter range. The per-element
// passes are the kernels of quant/kernels/cpq.h (rq_forward / rq_backward) on x's device.
class RqConcrete : public CustomFunction {
 public:
  struct Setup {
    GridRange range;
    double temperature = 1.0;
    bool straight_through = true;
    int window = 0;  // bins either side of the nearest point; 0 = the full grid
    Generator gen;   // the stream and the first counter of this draw
    uint64_t base = 0;
    PositiveMap map = PositiveMap::exp;
  };
  explicit RqConcrete(Setup s) : s_(std::move(s)) {}
  std::string name() const override { return s_.straight_through ? "rq_st_concrete" : "rq_concrete"; }
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& dy) override;
  void release() override { x_ = raw_a_ = raw_s_ = Tensor(); }

  // Counter values one draw over n elements uses.
  static uint64_t counters(int64_t n, GridRange r) { return static_cast<uint64_t>(n) * ((r.levels() + 3) / 4); }

 private:
  RqArgs args() const;
  Setup s_;
  Tensor x_, raw_a_, raw_s_;
  std::vector<float> alpha_, sigma_;
};

// Parameters "alpha_raw", "sigma_raw" ([] or [C]); init as cpq (MSE-optimal alpha, sigma =
// alpha/3). Options: temperature (lambda, default 1), straight_through (default true),
// window_sigmas (default 3), sigma_init, init (mse | max), positive (exp | softplus).
class RqQuantizer : public Quantizer {
 public:
  explicit RqQuantizer(const QuantSpec& spec);
  static QuantizerCapabilities capabilities();

  void init_from(const Tensor& x) override;
  Tensor step() const override;
  std::vector<float> sigma_values() const override;

 protected:
  Tensor quantize(const Tensor& x) override;
};

}  // namespace lowbit
