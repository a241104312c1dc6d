// Quantization report: collection from the model, JSON, text table and the one-line form.
#include "report.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "quantize_model.h"

namespace lowbit {

namespace {

bool inside_quantizer(const std::string& full_name) {
  return full_name.find(".wq.") != std::string::npos || full_name.find(".aq.") != std::string::npos ||
         full_name.rfind("wq.", 0) == 0 || full_name.rfind("aq.", 0) == 0;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// One value, or "min..max (C)" for per-channel values, or "-".
std::string values_str(const std::vector<float>& v) {
  if (v.empty()) return "-";
  if (v.size() == 1) return fmt("%.4g", v[0]);
  float lo = v[0], hi = v[0];
  for (float x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  return fmt("%.3g", lo) + ".." + fmt("%.3g", hi) + " (" + std::to_string(v.size()) + ")";
}

std::string occupancy_str(const TensorQuantReport& r) {
  if (r.occupancy.empty() || r.numel == 0) return "-";
  if (r.occupancy.size() > 16) return std::to_string(r.occupancy.size()) + " levels";
  std::string s;
  for (int64_t c : r.occupancy) s += (s.empty() ? "" : " ") + fmt("%.0f", 100.0 * double(c) / double(r.numel));
  return s + " %";
}

nlohmann::json tensor_json(const TensorQuantReport& r) {
  nlohmann::json j;
  j["method"] = r.method;
  j["bits"] = r.bits;
  j["signed"] = r.is_signed;
  j["alpha"] = r.alpha;
  j["sigma"] = r.sigma;
  j["gates"] = r.gates;
  j["qmin"] = r.qmin;
  j["occupancy"] = r.occupancy;
  return j;
}

}  // namespace

QuantModelReport quant_report(Module& root) {
  QuantModelReport rep;
  double bit_sum = 0;
  for (const auto& q : quantized_layers(root)) {
    LayerQuantReport l;
    l.name = q.name;
    l.kind = q.kind;
    Tensor w = q.layer->parameter("weight");
    l.numel = w.numel();
    if (q.wq) {
      l.has_weight_quantizer = true;
      l.weight = q.wq->report(&w);
      l.weight_bits = l.weight.bits;
      l.method = q.wq->spec().method;
      rep.model_bytes += 4 * static_cast<int64_t>(l.weight.alpha.size());
    }
    if (q.aq) {
      l.has_act_quantizer = true;
      l.activation = q.aq->report(nullptr);
      l.act_bits = l.activation.bits;
      if (!q.wq) l.method = q.aq->spec().method;
      rep.model_bytes += 4 * static_cast<int64_t>(l.activation.alpha.size());
    }
    if (l.weight_bits == 32) ++rep.float_layers;
    rep.total_weights += l.numel;
    bit_sum += double(l.numel) * l.weight_bits;
    rep.weight_bytes += (l.numel * l.weight_bits + 7) / 8;
    rep.weight_float_bytes += 4 * l.numel;
    rep.layers.push_back(std::move(l));
  }
  rep.avg_weight_bits = rep.total_weights ? bit_sum / double(rep.total_weights) : 32.0;
  rep.model_bytes += rep.weight_bytes;
  rep.model_float_bytes = rep.weight_float_bytes;
  std::vector<std::string> weights;
  for (const auto& l : rep.layers) weights.push_back(l.name.empty() ? "weight" : l.name + ".weight");
  for (const auto& [name, t] : root.named_parameters()) {
    if (inside_quantizer(name) || std::find(weights.begin(), weights.end(), name) != weights.end()) continue;
    rep.model_bytes += 4 * t.numel();
    rep.model_float_bytes += 4 * t.numel();
  }
  return rep;
}

std::string QuantModelReport::to_json() const {
  nlohmann::json j;
  j["format"] = "lowbit-quant-report";
  j["version"] = 1;
  nlohmann::json ls = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json e;
    e["name"] = l.name;
    e["kind"] = l.kind;
    e["method"] = l.method;
    e["weight_bits"] = l.weight_bits;
    e["act_bits"] = l.act_bits;
    e["numel"] = l.numel;
    e["weight"] = l.has_weight_quantizer ? tensor_json(l.weight) : nlohmann::json(nullptr);
    e["activation"] = l.has_act_quantizer ? tensor_json(l.activation) : nlohmann::json(nullptr);
    ls.push_back(e);
  }
  j["layers"] = ls;
  j["totals"] = {{"weights", total_weights},
                 {"avg_weight_bits", avg_weight_bits},
                 {"float_layers", float_layers},
                 {"weight_bytes", weight_bytes},
                 {"weight_float_bytes", weight_float_bytes},
                 {"weight_compression", weight_compression()},
                 {"model_bytes", model_bytes},
                 {"model_float_bytes", model_float_bytes},
                 {"model_compression", model_compression()}};
  return j.dump(2) + "\n";
}

std::string QuantModelReport::table() const {
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "%-22s %-6s %-12s %6s %6s %10s  %-20s %-20s %-12s %s\n", "layer", "kind", "method",
                "W bits", "A bits", "weights", "alpha W / A", "sigma W", "gates", "occupancy (% per code)");
  os << line;
  for (const auto& l : layers) {
    std::string alpha = values_str(l.weight.alpha) + " / " + values_str(l.activation.alpha);
    std::snprintf(line, sizeof line, "%-22s %-6s %-12s %6d %6d %10lld  %-20s %-20s %-12s %s\n",
                  l.name.empty() ? "(root)" : l.name.c_str(), l.kind.c_str(), l.method.c_str(), l.weight_bits,
                  l.act_bits, static_cast<long long>(l.numel), alpha.c_str(), values_str(l.weight.sigma).c_str(),
                  values_str(l.weight.gates).c_str(), occupancy_str(l.weight).c_str());
    os << line;
  }
  os << "average weight bits " << fmt("%.3f", avg_weight_bits) << " over " << total_weights << " weights";
  if (float_layers) os << " (" << float_layers << " layer(s) left in float, counted at 32 bits)";
  os << "\nweights: " << weight_bytes << " bytes vs " << weight_float_bytes << " in float32 ("
     << fmt("%.2f", weight_compression()) << "x)\n";
  os << "model:   " << model_bytes << " bytes vs " << model_float_bytes << " in float32 ("
     << fmt("%.2f", model_compression()) << "x; other parameters at 32 bits, scales included)\n";
  return os.str();
}

std::string QuantModelReport::short_line() const {
  std::string s = "W bits avg " + fmt("%.2f", avg_weight_bits) + " [";
  for (size_t i = 0; i < layers.size(); ++i) s += (i ? " " : "") + std::to_string(layers[i].weight_bits);
  s += "] A [";
  for (size_t i = 0; i < layers.size(); ++i) s += (i ? " " : "") + std::to_string(layers[i].act_bits);
  s += "] size " + fmt("%.1f", model_bytes / 1024.0) + " KiB (" + fmt("%.1f", model_compression()) + "x)";
  return s;
}

std::map<std::string, int> QuantModelReport::bits_map() const {
  std::map<std::string, int> m;
  for (const auto& l : layers) {
    m[l.name + ".weight_bits"] = l.weight_bits;
    m[l.name + ".act_bits"] = l.act_bits;
  }
  return m;
}

namespace {
double mean_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s / static_cast<double>(v.size());
}
}  // namespace

std::map<std::string, double> QuantModelReport::scales_map() const {
  std::map<std::string, double> m;
  for (const auto& l : layers) {
    const auto add = [&](const TensorQuantReport& t, const std::string& role) {
      if (!t.alpha.empty()) m[l.name + "." + role + "_alpha"] = mean_of(t.alpha);
      if (!t.sigma.empty()) m[l.name + "." + role + "_sigma"] = mean_of(t.sigma);
    };
    if (l.has_weight_quantizer) {
      add(l.weight, "weight");
      const auto& occ = l.weight.occupancy;
      int64_t total = 0;
      for (int64_t c : occ) total += c;
      if (occ.size() >= 2 && total > 0)
        m[l.name + ".weight_clipped"] = static_cast<double>(occ.front() + occ.back()) / static_cast<double>(total);
    }
    if (l.has_act_quantizer) add(l.activation, "act");
  }
  return m;
}

}  // namespace lowbit
