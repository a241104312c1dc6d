// quantize_model: choosing the layers, resolving their settings, attaching the quantizers.
#include "quantize_model.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "../core/private/json_fields.h"
#include "../layers/conv2d.h"
#include "../layers/linear.h"
#include "qlinear.h"
#include "registry.h"

namespace lowbit {

namespace {

const char* layer_kind(Module& m) {
  if (dynamic_cast<Conv2d*>(&m)) return "conv";
  if (dynamic_cast<Linear*>(&m)) return "linear";
  return nullptr;
}

// fixed_bits_from as the last, strongest overrides: one per layer of the report, bits fixed.
void add_fixed_bits(QuantSettings& s, const std::vector<std::string>& candidates) {
  auto bits = read_report_bits(s.fixed_bits_from);
  std::set<std::string> known(candidates.begin(), candidates.end());
  for (const auto& [name, wa] : bits)
    LOWBIT_CHECK(known.count(name), "quant.fixed_bits_from", s.fixed_bits_from, ": layer '", name,
                 "' is not a quantizable layer of this model");
  for (const auto& name : candidates) {
    auto it = bits.find(name);
    LOWBIT_CHECK(it != bits.end(), "quant.fixed_bits_from", s.fixed_bits_from, ": has no entry for layer '", name,
                 "' (was it written for another model?)");
    QuantOverride ov;
    ov.match = name;
    ov.path = "quant.fixed_bits_from[" + name + "]";
    ov.fields.weight_bits = it->second.first;
    ov.fields.act_bits = it->second.second;
    ov.fields.learn_bits_enabled = false;
    s.overrides.push_back(std::move(ov));
  }
}

}  // namespace

std::map<std::string, std::pair<int, int>> read_report_bits(const std::string& path) {
  std::ifstream in(path);
  LOWBIT_CHECK(in.good(), path, "cannot open the quant report");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("not a valid JSON quant report: ") + e.what(), path);
  }
  LOWBIT_CHECK(j.is_object() && j.contains("layers") && j["layers"].is_array(), path,
               "expected a quant report with a \"layers\" list");
  std::map<std::string, std::pair<int, int>> out;
  for (size_t i = 0; i < j["layers"].size(); ++i) {
    const JsonFields l(j["layers"][i], path, "layers[" + std::to_string(i) + "]");
    const std::string name = l.string("name");
    int bits[2];
    const char* keys[2] = {"weight_bits", "act_bits"};
    for (int k = 0; k < 2; ++k) {
      bits[k] = static_cast<int>(l.integer(keys[k], 1, 32));
      if (bits[k] > 16 && bits[k] != 32) l.fail(keys[k], "in 1..16 or 32 (float)");
    }
    out[name] = {bits[0], bits[1]};
  }
  return out;
}

QuantizeResult quantize_model(Module& root, const std::string& quant_yaml) {
  return quantize_model(root, parse_quant_config(quant_yaml));
}

QuantizeResult quantize_model(Module& root, const QuantSettings& given) {
  QuantizeResult result;
  result.settings = given;
  result.param_group = given.optim;
  if (!given.enabled) return result;

  std::vector<std::pair<std::string, Module*>> candidates;
  for (auto& [name, m] : root.named_modules()) {
    const char* kind = layer_kind(*m);
    if (!kind) continue;
    bool chosen = false;
    for (const auto& k : given.layers) chosen = chosen || k == kind;
    if (!chosen) continue;
    LOWBIT_CHECK(!m->child("wq") && !m->child("aq"), "quantize_model", "layer '", name, "' is already quantized");
    candidates.emplace_back(name, m);
  }
  std::vector<std::string> names;
  for (const auto& c : candidates) names.push_back(c.first);

  QuantSettings s = given;
  if (!s.fixed_bits_from.empty()) add_fixed_bits(s, names);
  for (const auto& ov : s.overrides) {
    bool any = false;
    for (const auto& n : names) any = any || glob_match(ov.match, n);
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    LOWBIT_CHECK(any, ov.path + ".match", "pattern '", ov.match,
                 "' matches no quantizable layer (layers: ", list.empty() ? "none" : list, ")");
  }

  // Resolve every layer before changing any, so an error leaves the model as it was.
  std::vector<LayerQuantSpec> specs;
  for (const auto& [name, m] : candidates) specs.push_back(resolve_layer(s, name, m->parameter("weight").shape()));
  for (size_t i = 0; i < candidates.size(); ++i) {
    auto& [name, m] = candidates[i];
    QuantizedLayer q{name, layer_kind(*m), m, nullptr, nullptr};
    if (specs[i].weight) q.wq = make_quantizer(*specs[i].weight);
    if (specs[i].activation) q.aq = make_quantizer(*specs[i].activation);
    attach_quantizers(*m, q.wq, q.aq);
    result.layers.push_back(q);
  }
  for (const auto& [name, t] : root.named_parameters()) {
    bool match = false;
    for (const auto& p : result.param_group.patterns) match = match || glob_match(p, name);
    if (match) result.group_parameters.push_back(name);
  }
  return result;
}

std::vector<QuantizedLayer> quantized_layers(Module& root) {
  std::vector<QuantizedLayer> out;
  for (auto& [name, m] : root.named_modules()) {
    const char* kind = layer_kind(*m);
    if (!kind) continue;
    QuantizerPtr wq = weight_quantizer(*m), aq = activation_quantizer(*m);
    out.push_back({name, kind, m, wq, aq});
  }
  return out;
}

}  // namespace lowbit
