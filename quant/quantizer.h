// Quantizer: the interface every quantization method implements (DESIGN.md "Quantizers"), and its settings.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../core/rng.h"
#include "../core/tensor.h"
#include "../layers/module.h"
#include "grid.h"

namespace lowbit {

enum class QuantRole { weight, activation };
const char* role_name(QuantRole role);

struct DropBitsSpec {
  enum class Granularity { per_element, per_tensor };
  enum class Mode { resolution, range };  // drop least significant bits | drop most significant bits
  bool enabled = false;
  double p = 0.3;  // the finest level drops with p, the next with p^2, ...
  Granularity granularity = Granularity::per_element;
  bool protect_ends = true;  // the lowest and highest grid points are never dropped
  Mode mode = Mode::resolution;
  bool apply_to_activations = false;
};

struct LearnBitsSpec {
  bool enabled = false;
  double lambda = 1e-9;  // weight of the L0 (expected memory) regulariser
  int max_bits = 8;      // the number of gated levels
  double init = 3.0;     // initial gate logit log a of every level (P(open) close to 1)
};

// The resolved settings of one quantizer (the config's defaults with every matching override
// applied). Built by the quant config parser (quant_config.h); a method reads what it needs.
struct QuantSpec {
  std::string method;  // the registry name as written in the config (aliases kept)
  int bits = 8;        // 1..16 (32 never reaches a quantizer: the layer has none)
  QuantRole role = QuantRole::weight;
  // Weights: from the config (default true). Activations: `act_signed: auto` leaves it unset
  // (signed_auto true) and the quantizer decides at calibration: observed minimum >= 0 -> unsigned.
  bool is_signed = true;
  bool signed_auto = false;
  bool per_channel = false;  // weights only: one alpha (and sigma) per slice along dim 0
  // Weights: the weight's shape (per-channel sizes, learn_bits costs). Activations: empty.
  Shape shape;
  int64_t channels() const { return per_channel && !shape.empty() ? shape[0] : 1; }
  GridKind grid = GridKind::rq;
  DropBitsSpec dropbits;     // enabled only where the method supports it and the role applies
  LearnBitsSpec learn_bits;  // weights only
  // Activation calibration: batches observed before alpha is set, and how (a method reads it):
  // "max" (largest |x| observed) or "percentile" (act_percentile of |x|, default 99.99).
  int64_t calibration_batches = 4;
  std::string act_init = "percentile";
  double act_percentile = 99.99;
  // Method options (`quant.options`), as YAML scalar text, checked against the names the
  // method declares in its capabilities. Read them with the typed getters below.
  std::map<std::string, std::string> options;

  double option_double(const std::string& key, double fallback) const;
  int64_t option_int(const std::string& key, int64_t fallback) const;
  bool option_bool(const std::string& key, bool fallback) const;
  std::string option_string(const std::string& key, const std::string& fallback) const;
};

// Integer codes such that dequantize() equals the quantizer's eval forward bit for bit.
//   uniform grid: value = float(code) * scale  (scale shape {} or {C}, broadcast along dim 0)
//   codebook:     value = codebook[code]       (codebook f32 [2^bits], codes in 0..2^bits-1)
struct IntTensor {
  Tensor codes;           // i32, the shape of x
  Tensor scale;           // f32 [] or [C] (per channel along dim 0); undefined with a codebook
  Tensor codebook;        // f32 [2^bits] or undefined
  int bits = 0;           // bits per code when packed
  bool is_signed = true;  // codes in [-2^(bits-1), 2^(bits-1)) when signed, [0, 2^bits) when not
  Tensor dequantize() const;
};

// What report() says about one quantizer (and the tensor it quantizes, when given).
struct TensorQuantReport {
  std::string method;
  std::string role;
  int bits = 0;
  bool is_signed = true;
  std::vector<float> alpha;  // one value, or one per channel
  std::vector<float> sigma;  // empty where the method has none
  std::vector<float> gates;  // learned bit gates (deterministic eval value per level), if any
  // With x: the number of elements on each code qmin..qmax (occupancy[i] counts code qmin + i).
  int64_t qmin = 0;
  std::vector<int64_t> occupancy;
  int64_t numel = 0;
};

// What a method can do; the config parser rejects settings a method does not support.
struct QuantizerCapabilities {
  bool learn_bits = false;
  bool dropbits = false;
  bool per_channel = true;
  bool activations = true;           // may quantize activations
  std::vector<std::string> options;  // names accepted under quant.options
  std::string summary;               // one line for listings and errors
};

// A quantizer is a Module (its parameters and buffers are saved in state_dict under the
// layer, e.g. "features.0.wq.alpha_raw"). Positive quantities are stored raw and mapped
// through softplus (grid.h); name such parameters "<name>_raw".
//
// Life cycle:
//  - weights: quantize_model() binds the layer's weight (bind_source) and calls init_from()
//    on it; after a non-strict load without the quantizer's entries, initialize_missing()
//    re-derives them from the loaded weight.
//  - activations: until initialised, calibration_batches() > 0; forwards without gradients
//    observe x (observe()) and pass it through unchanged; end_calibration() calls
//    init_from() on the observed sample (which always includes the exact min and max) and
//    resolves `act_signed: auto`. A forward with gradients on an uninitialised activation
//    quantizer initialises it from that batch (LSQ's habit), so hand-written loops work.
//  - eval mode: deterministic; export_int(x) reproduces forward(x) exactly.
class Quantizer : public Module {
 public:
  Quantizer(QuantSpec spec, std::string type_name);

  const QuantSpec& spec() const { return spec_; }
  QuantRole role() const { return spec_.role; }

  // The fake-quantized tensor. Handles the calibration/initialisation protocol above, then
  // calls quantize().
  Tensor forward(const Tensor& x) override;

  // Current effective bit-width (learned bits are read off at eval).
  virtual int bits() const { return spec_.bits; }
  // Signedness (activations: after calibration when `act_signed: auto`).
  bool is_signed() const;
  // The code range of the current bits and sign; methods with their own grids override.
  virtual GridRange range() const { return grid_range(bits(), is_signed(), spec_.grid); }
  bool initialized() const;

  // Initialises from x and marks the quantizer initialised (activations with act_signed:
  // auto also take their sign from x's minimum). What callers use; it calls init_from().
  void initialize(const Tensor& x);
  // What a method implements: alpha (sigma, ...) from the statistics of x (called without
  // recording, after the sign is known). A direct call does not mark the quantizer initialised.
  virtual void init_from(const Tensor& x) = 0;
  // The step alpha as an f32 tensor ([] or [C]), detached; used by the default
  // export_int() and report(). Methods without a uniform step override those instead.
  virtual Tensor step() const = 0;
  virtual std::vector<float> sigma_values() const { return {}; }
  virtual std::vector<float> gate_values() const { return {}; }

  // Integer codes of x under the eval forward. Default: clamp(round(x / step)) on range().
  virtual IntTensor export_int(const Tensor& x) const;
  // Default: method, role, bits, sign, step, sigma_values, gate_values, occupancy of x's codes.
  virtual TensorQuantReport report(const Tensor* x) const;

  // The tensor a weight quantizer quantizes (set by QLinear / QConv2d); undefined for activations.
  void bind_source(std::function<Tensor()> source) { source_ = std::move(source); }
  Tensor source() const { return source_ ? source_() : Tensor(); }

  // Stochastic methods draw from this stream (Module::generator): the trainer seeds it from a
  // split of the run's generator named after the module and checkpoints its position.
  Generator* generator() override { return &gen_; }
  void set_generator(const Generator& gen) { gen_ = gen; }

  // ---- Module hooks with the protocol above (subclasses extend, calling these) ----
  int64_t calibration_batches() const override;
  void end_calibration() override;
  std::vector<std::string> initialize_missing(const std::vector<std::string>& missing) override;

 protected:
  // The method itself: the fake-quantized x, differentiable by the method's estimator;
  // deterministic when !is_training().
  virtual Tensor quantize(const Tensor& x) = 0;
  // Records part of x for calibration (a bounded strided sample plus the exact extremes).
  void observe(const Tensor& x);
  void mark_initialized(bool on);
  // For act_signed: auto, after calibration.
  void set_signed(bool on);
  // The calibration sample gathered so far (empty before any observe()).
  Tensor observed_sample() const;
  // "LsqQuantizer (lsq)": the `where` of this quantizer's errors.
  std::string type_name_for_errors() const;

 private:
  QuantSpec spec_;
  std::function<Tensor()> source_;
  Generator gen_;
  std::vector<float> sample_;
  float observed_min_ = 0, observed_max_ = 0;
  bool observed_any_ = false;
};

using QuantizerPtr = std::shared_ptr<Quantizer>;

// ---- uniform-grid helpers (no gradient), the one code path for eval forwards and exports ----
// x f32 (any shape); alpha f32 [] or [C] with C = x.shape[0] (per channel along dim 0).
// grid_quantize: grid_value() per element; grid_codes: grid_code() per element, as i32.
Tensor grid_quantize(const Tensor& x, const Tensor& alpha, GridRange range);
Tensor grid_codes(const Tensor& x, const Tensor& alpha, GridRange range);
// Statistics for initialisation, per slice along dim 0 (channels == 1: the whole tensor).
std::vector<float> abs_max(const Tensor& x, int64_t channels = 1);
std::vector<float> abs_mean(const Tensor& x, int64_t channels = 1);
// The p-th percentile (0..100) of |x| over the whole tensor (nearest rank).
float abs_percentile(const Tensor& x, double p);
// Throws an Error naming `where` when x holds NaN or infinity.
void check_finite(const Tensor& x, const std::string& where);

}  // namespace lowbit
