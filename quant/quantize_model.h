// quantize_model: the model-wide transform from the `quant:` config section.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "../layers/module.h"
#include "quant_config.h"
#include "quantizer.h"

namespace lowbit {

struct QuantizedLayer {
  std::string name;  // the module's dotted name ("features.0")
  std::string kind;  // "conv" | "linear"
  Module* layer = nullptr;
  QuantizerPtr wq, aq;  // null where left in float (32 bits)
};

struct QuantizeResult {
  std::vector<QuantizedLayer> layers;         // every candidate layer, in model order (some may have no quantizer)
  QuantParamGroup param_group;                // lr / weight decay of the quantizer parameters
  std::vector<std::string> group_parameters;  // full names matching param_group.patterns, in model order
  QuantSettings settings;
};

// Turns every candidate Conv2d / Linear of `root` (quant.layers) into a quantized layer in
// place (attach_quantizers): weight quantizers are initialised from the current weights,
// activation quantizers wait for calibration. Precedence of the settings of a layer, lowest
// first: the built-in defaults, the keys at the top of quant:, then each override whose glob
// matches the layer's name in file order (a later one wins), then fixed_bits_from.
// Errors (before the model is changed): an override matching no candidate layer, a method
// that does not support what is asked, a fixed_bits_from report that does not fit the model.
// A disabled (empty) section leaves the model unchanged and returns no layers.
QuantizeResult quantize_model(Module& root, const QuantSettings& settings);
// The same from the YAML text of the quant: section (train/config.h's QuantConfig::yaml).
QuantizeResult quantize_model(Module& root, const std::string& quant_yaml);

// The per-layer bits of a quant_report.json: name -> {weight bits, act bits} (32 = float).
std::map<std::string, std::pair<int, int>> read_report_bits(const std::string& path);

// Every Conv2d / Linear of root in model order, with its quantizers (null where it has none).
std::vector<QuantizedLayer> quantized_layers(Module& root);

}  // namespace lowbit
