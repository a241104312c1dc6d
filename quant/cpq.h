// cpq (alias srq): Cluster-Promoting Quantization / Semi-Relaxed Quantization (Lee, Yun, Hwang,
// Yang: SRQ arXiv 1911.12990; CPQ, ICCV 2021) with DropBits and learned bit-widths.
// Follows QUANTIZERS.md "SRQ / CPQ": the RQ logistic-bin categorical pi (RQ, Louizos et al.
// ICLR 2019, eq. 2-3), the mode as the forward, the multi-class straight-through estimator as
// the backward; DropBits level masks; nested hard-concrete gates for the bit-width.
#pragma once

#include <memory>
#include <optional>

#include "../core/autograd.h"
#include "cpq_kernel.h"
#include "dropbits.h"
#include "quantizer.h"

namespace lowbit {

// How alpha and sigma are kept positive (option `positive`): exp(raw) (the default: Adam's
// steps on raw are then relative changes, whatever the tensor's scale) or softplus(raw).
enum class PositiveMap { exp, softplus };
PositiveMap positive_map_of(const QuantSpec& spec);
// alpha (or sigma) as the forward uses it: float(map(raw)), at least 1e-8.
std::vector<float> positive_values(const Tensor& raw, PositiveMap map);
// raw such that map(raw) = v.
double positive_inverse(double v, PositiveMap map);
// dL/draw from dL/dvalue: d exp(raw) = exp(raw), d softplus(raw) = Sig(raw).
Tensor positive_raw_gradient(const Tensor& raw, const std::vector<double>& d, PositiveMap map);

// The multi-class straight-through estimator. Inputs {x, alpha_raw, sigma_raw[, gates]}
// (alpha = map(alpha_raw), sigma = map(sigma_raw), map exp or softplus, [] or [C]; gates [L] the nested
// weights of levels 2..L+1, v_k = gates[level(k) - 2], 1 on level 1).
// Forward: x_hat = alpha * k*, k* the nearest surviving code (the mode of the masked pi).
// Backward (by convention, not by calculus): the gradient of m = sum_k pi_k sg(g_k), i.e.
//   dL/dx = dy dm/dx,  dL/dalpha = sum dy (dm/dalpha + [alpha_direct] k*),
//   dL/dsigma = sum dy dm/dsigma,  dL/dgate_l = sum dy sum_{level(k)=l} dm/dv_k,
// then through the positive map. See cpq_kernel.h for dm/dtheta.
class MulticlassSte : public CustomFunction {
 public:
  struct Setup {
    GridRange range;
    bool alpha_direct = true;
    std::vector<int> levels;        // per code (needed with gates)
    std::vector<uint8_t> drop_bit;  // per code (empty: no DropBits)
    Tensor elem_mask;               // u8, x's shape (per-element DropBits), or undefined
    uint8_t tensor_mask = 0;
    PositiveMap map = PositiveMap::exp;
  };
  explicit MulticlassSte(Setup setup) : setup_(std::move(setup)) {}
  std::string name() const override { return "multiclass_ste"; }
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& dy) override;
  void release() override {
    x_ = raw_a_ = raw_s_ = Tensor();
    setup_.elem_mask = Tensor();
  }

 private:
  CpqArgs args() const;
  Setup setup_;
  Tensor x_, raw_a_, raw_s_;
  std::vector<float> alpha_, sigma_, weight_;
  bool has_gates_ = false;
  int64_t gate_count_ = 0;
  Device gate_device_ = Device::cpu();
};

// Parameters "alpha_raw", "sigma_raw" ([] or [C]) and, with learn_bits, "gate_log_alpha"
// [max_bits - 1] (levels 2..max_bits). Initialisation: alpha minimises the quantisation MSE of
// the tensor on the grid (option init: mse | max), sigma = sigma_init * alpha (default 1/3).
// Options: alpha_direct_grad (default true), sigma_init, init, positive (exp | softplus).
class CpqQuantizer : public Quantizer {
 public:
  explicit CpqQuantizer(const QuantSpec& spec);
  static QuantizerCapabilities capabilities();

  void init_from(const Tensor& x) override;
  Tensor step() const override;
  int bits() const override;
  std::vector<float> sigma_values() const override;
  std::vector<float> gate_values() const override;
  Tensor regularizer() override;

  // The bit-width of the grid the training forward uses (max_bits with learn_bits).
  int grid_bits() const;

 protected:
  Tensor quantize(const Tensor& x) override;

 private:
  const DropBitsSampler& sampler();
  std::optional<DropBitsSampler> sampler_;
  bool sampler_signed_ = true;
};

// alpha minimising sum (x - Q_alpha(x))^2 over candidates t * max|x| / max(|qmin|, qmax),
// t in (0, 1] (80 steps, then a finer pass around the best), on a strided sample of at most
// 65536 elements per channel. One value per channel.
std::vector<float> mse_step(const Tensor& x, GridRange range, int64_t channels);

// The logistic-bin methods' initialisation (cpq, rq): alpha from option `init` (mse: mse_step,
// max: max|x| / max(|qmin|, qmax)), sigma = alpha * option `sigma_init` (1/3), both written
// through the spec's positive map into the quantizer's alpha_raw and sigma_raw.
void init_alpha_sigma(Quantizer& q, const Tensor& x, GridRange range);

}  // namespace lowbit
