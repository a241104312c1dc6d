// The `quant:` config section: parsed and checked with key-path errors, resolved per layer into QuantSpecs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "../optim/optimizer.h"  // glob_match: `*` any run of characters, `?` one character
#include "quantizer.h"

namespace lowbit {

// Settings that the defaults and each override may set; unset fields fall through.
struct QuantFields {
  std::optional<std::string> method;
  std::optional<int> weight_bits, act_bits;  // 1..16, or 32 = no quantizer
  std::optional<bool> per_channel;
  std::optional<std::string> act_signed;  // auto | true | false
  std::optional<GridKind> grid;
  std::optional<bool> dropbits_enabled, dropbits_protect_ends, dropbits_apply_to_activations;
  std::optional<double> dropbits_p;
  std::optional<DropBitsSpec::Granularity> dropbits_granularity;
  std::optional<DropBitsSpec::Mode> dropbits_mode;
  std::optional<bool> learn_bits_enabled;
  std::optional<double> learn_bits_lambda, learn_bits_init;
  std::optional<int> learn_bits_max_bits;
  std::optional<int64_t> calibration_batches;
  std::optional<std::string> calibration_init;  // max | percentile
  std::optional<double> calibration_percentile;
  std::map<std::string, std::string> options;  // merged key by key

  // Fields set in `later` replace those here.
  void merge(const QuantFields& later);
};

struct QuantOverride {
  std::string match;  // a glob over module names ("features.0", "layer*.conv1", "*")
  QuantFields fields;
  std::string path;  // "quant.overrides[1]", for messages
};

// The parameter group of quantizer parameters (alpha, sigma, gates) for the trainer.
struct QuantParamGroup {
  std::vector<std::string> patterns = {"*.wq.*", "*.aq.*"};  // globs over full parameter names
  std::optional<double> lr;                                  // unset: the optimizer's lr
  double weight_decay = 0.0;
  // One optimizer ParamGroupSpec per pattern, for the trainer to append to optim.groups.
  std::vector<ParamGroupSpec> specs() const {
    std::vector<ParamGroupSpec> out;
    for (const auto& p : patterns) out.push_back({p, lr, weight_decay});
    return out;
  }
};

struct QuantSettings {
  bool enabled = false;                  // false when the section is absent or empty
  QuantFields defaults;                  // with every field filled (the documented defaults)
  std::vector<QuantOverride> overrides;  // in file order; a later match wins
  QuantParamGroup optim;
  std::string fixed_bits_from;  // a quant_report.json whose per-layer bits replace the config's
  // Which layer kinds are candidates: "conv", "linear" (default both).
  std::vector<std::string> layers = {"conv", "linear"};
};

// The specs of one layer. A bit-width of 32 leaves that quantizer out (the optional is empty).
struct LayerQuantSpec {
  std::optional<QuantSpec> weight, activation;
  // Where each setting came from, for messages: "quant" and the matching overrides' paths.
  std::vector<std::string> sources;
};

// Parses the YAML text of the `quant:` section (train/config.h keeps it as text). Unknown keys,
// wrong types and out-of-range values throw an Error naming the key path (quant.dropbits.p).
// Empty text gives a disabled QuantSettings.
QuantSettings parse_quant_config(const std::string& yaml_text);

// The resolved specs of the layer called `name` with weight shape `weight_shape`: the
// defaults, then every override whose glob matches, in file order (later wins). Checks the
// method exists and supports what is asked (learn_bits, dropbits, per_channel, activations).
LayerQuantSpec resolve_layer(const QuantSettings& settings, const std::string& name, const Shape& weight_shape);

}  // namespace lowbit
