// Quantization report: per-layer bits, scales, grid occupancy and gates, with model-size totals.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "../layers/module.h"
#include "quantizer.h"

namespace lowbit {

struct LayerQuantReport {
  std::string name;
  std::string kind;                     // conv | linear
  std::string method = "float";         // of the weight quantizer, else of the activation one, else "float"
  int weight_bits = 32, act_bits = 32;  // 32: left in float
  int64_t numel = 0;                    // number of weights
  bool has_weight_quantizer = false, has_act_quantizer = false;
  TensorQuantReport weight;      // with the occupancy of the current weights
  TensorQuantReport activation;  // without occupancy (no tensor at hand)
};

// Totals. "weights" are the Conv2d / Linear weight tensors; "model" adds every other
// parameter (biases, BatchNorm affine, quantizer parameters excluded) at 32 bits and one
// f32 scale per quantized-weight step value. Buffers (BatchNorm running statistics) are not
// counted. Sizes round each quantized tensor up to whole bytes.
struct QuantModelReport {
  std::vector<LayerQuantReport> layers;
  int64_t total_weights = 0;
  double avg_weight_bits = 32;  // weighted by weight count; float layers count as 32
  int64_t float_layers = 0;     // conv / linear layers whose weights stay at 32 bits
  int64_t weight_bytes = 0, weight_float_bytes = 0;
  int64_t model_bytes = 0, model_float_bytes = 0;
  double weight_compression() const { return weight_bytes ? double(weight_float_bytes) / weight_bytes : 1.0; }
  double model_compression() const { return model_bytes ? double(model_float_bytes) / model_bytes : 1.0; }

  std::string to_json() const;     // quant_report.json (read back by read_report_bits)
  std::string table() const;       // a per-layer text table and the totals
  std::string short_line() const;  // one line for per-epoch logs
  // "<layer>.weight_bits" and "<layer>.act_bits" -> bits, for metrics.jsonl.
  std::map<std::string, int> bits_map() const;
  // What drifts during training, for metrics.jsonl: "<layer>.weight_alpha" / ".weight_sigma" /
  // ".act_alpha" / ".act_sigma" (the mean over channels; only where the quantizer has the
  // value) and "<layer>.weight_clipped" (the fraction of weights on the two end codes).
  std::map<std::string, double> scales_map() const;
};

QuantModelReport quant_report(Module& root);

}  // namespace lowbit
