// Parsing the `quant:` section with key-path errors, and resolving it per layer.
#include "quant_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>

#include "registry.h"

namespace lowbit {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what, "quant config");
}

std::string describe(const YAML::Node& n) {
  if (n.IsMap()) return "a mapping";
  if (n.IsSequence()) return "a list";
  if (n.IsNull()) return "empty";
  return "'" + n.Scalar() + "'";
}

void require_map(const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) fail(path, "expected a mapping, got " + describe(n));
}

void check_keys(const YAML::Node& n, const std::string& path, const std::set<std::string>& allowed) {
  for (const auto& kv : n) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(path.empty() ? key : path + "." + key, "unknown key (known here: " + list + ")");
    }
  }
}

std::string scalar(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) fail(path, "expected a value, got " + describe(n));
  return n.Scalar();
}

bool as_bool(const YAML::Node& n, const std::string& path) {
  const std::string s = scalar(n, path);
  if (s == "true" || s == "yes" || s == "on") return true;  // the spellings train/config accepts
  if (s == "false" || s == "no" || s == "off") return false;
  fail(path, "expected true or false, got '" + s + "'");
}

double as_double(const YAML::Node& n, const std::string& path) {
  const std::string s = scalar(n, path);
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used == s.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  fail(path, "expected a number, got '" + s + "'");
}

int64_t as_int(const YAML::Node& n, const std::string& path) {
  const std::string s = scalar(n, path);
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  fail(path, "expected an integer, got '" + s + "'");
}

template <class E>
E as_enum(const YAML::Node& n, const std::string& path, const std::vector<std::pair<std::string, E>>& names) {
  const std::string s = scalar(n, path);
  std::string list;
  for (const auto& [name, value] : names) {
    if (name == s) return value;
    list += (list.empty() ? "" : " | ") + name;
  }
  fail(path, "expected " + list + ", got '" + s + "'");
}

int as_bits(const YAML::Node& n, const std::string& path) {
  const int64_t b = as_int(n, path);
  if (!((b >= 1 && b <= 16) || b == 32))
    fail(path, "bits must be in 1..16, or 32 for no quantization; got " + std::to_string(b));
  return static_cast<int>(b);
}

// The keys a layer's settings may hold, at the top level and in each override.
const std::set<std::string> kFieldKeys = {"method", "weight_bits", "act_bits",   "per_channel", "act_signed",
                                          "grid",   "dropbits",    "learn_bits", "calibration", "options"};

void parse_fields(const YAML::Node& n, const std::string& path, QuantFields& f) {
  const auto at = [&](const std::string& key) { return path + "." + key; };
  if (auto v = n["method"]) {
    f.method = scalar(v, at("method"));
    if (!has_quantizer(*f.method)) {
      std::string list;
      for (const auto& name : quantizer_names()) list += (list.empty() ? "" : ", ") + name;
      fail(at("method"), "unknown method '" + *f.method + "'; registered: " + list);
    }
  }
  if (auto v = n["weight_bits"]) f.weight_bits = as_bits(v, at("weight_bits"));
  if (auto v = n["act_bits"]) f.act_bits = as_bits(v, at("act_bits"));
  if (auto v = n["per_channel"]) f.per_channel = as_bool(v, at("per_channel"));
  if (auto v = n["act_signed"]) {
    const std::string s = scalar(v, at("act_signed"));
    if (s != "auto" && s != "true" && s != "false")
      fail(at("act_signed"), "expected auto | true | false, got '" + s + "'");
    f.act_signed = s;
  }
  if (auto v = n["grid"])
    f.grid = as_enum<GridKind>(v, at("grid"), {{"rq", GridKind::rq}, {"symmetric", GridKind::symmetric}});
  if (auto d = n["dropbits"]) {
    const std::string p = at("dropbits");
    require_map(d, p);
    check_keys(d, p, {"enabled", "p", "granularity", "protect_ends", "mode", "apply_to_activations"});
    if (auto v = d["enabled"]) f.dropbits_enabled = as_bool(v, p + ".enabled");
    if (auto v = d["p"]) {
      f.dropbits_p = as_double(v, p + ".p");
      if (*f.dropbits_p < 0 || *f.dropbits_p >= 1) fail(p + ".p", "must be in [0, 1), got " + scalar(v, p));
    }
    if (auto v = d["granularity"])
      f.dropbits_granularity =
          as_enum<DropBitsSpec::Granularity>(v, p + ".granularity",
                                             {{"per_element", DropBitsSpec::Granularity::per_element},
                                              {"per_tensor", DropBitsSpec::Granularity::per_tensor}});
    if (auto v = d["protect_ends"]) f.dropbits_protect_ends = as_bool(v, p + ".protect_ends");
    if (auto v = d["mode"])
      f.dropbits_mode = as_enum<DropBitsSpec::Mode>(
          v, p + ".mode", {{"resolution", DropBitsSpec::Mode::resolution}, {"range", DropBitsSpec::Mode::range}});
    if (auto v = d["apply_to_activations"]) f.dropbits_apply_to_activations = as_bool(v, p + ".apply_to_activations");
  }
  if (auto l = n["learn_bits"]) {
    const std::string p = at("learn_bits");
    require_map(l, p);
    check_keys(l, p, {"enabled", "lambda", "max_bits", "init"});
    if (auto v = l["enabled"]) f.learn_bits_enabled = as_bool(v, p + ".enabled");
    if (auto v = l["lambda"]) {
      f.learn_bits_lambda = as_double(v, p + ".lambda");
      if (*f.learn_bits_lambda < 0) fail(p + ".lambda", "must be >= 0");
    }
    if (auto v = l["max_bits"]) {
      const int64_t b = as_int(v, p + ".max_bits");
      if (b < 1 || b > 16) fail(p + ".max_bits", "must be in 1..16, got " + std::to_string(b));
      f.learn_bits_max_bits = static_cast<int>(b);
    }
    if (auto v = l["init"]) f.learn_bits_init = as_double(v, p + ".init");
  }
  if (auto c = n["calibration"]) {
    const std::string p = at("calibration");
    require_map(c, p);
    check_keys(c, p, {"batches", "init", "percentile"});
    if (auto v = c["batches"]) {
      f.calibration_batches = as_int(v, p + ".batches");
      if (*f.calibration_batches < 1) fail(p + ".batches", "must be >= 1");
    }
    if (auto v = c["init"]) {
      const std::string s = scalar(v, p + ".init");
      if (s != "max" && s != "percentile") fail(p + ".init", "expected max | percentile, got '" + s + "'");
      f.calibration_init = s;
    }
    if (auto v = c["percentile"]) {
      f.calibration_percentile = as_double(v, p + ".percentile");
      if (*f.calibration_percentile <= 0 || *f.calibration_percentile > 100)
        fail(p + ".percentile", "must be in (0, 100]");
    }
  }
  if (auto o = n["options"]) {
    const std::string p = at("options");
    require_map(o, p);
    for (const auto& kv : o) {
      const std::string key = kv.first.as<std::string>();
      f.options[key] = scalar(kv.second, p + "." + key);
    }
  }
}

// The documented defaults: every field set.
QuantFields default_fields() {
  QuantFields f;
  f.method = "ste_uniform";
  f.weight_bits = 8;
  f.act_bits = 8;
  f.per_channel = false;
  f.act_signed = "auto";
  f.grid = GridKind::rq;
  DropBitsSpec d;
  f.dropbits_enabled = d.enabled;
  f.dropbits_p = d.p;
  f.dropbits_granularity = d.granularity;
  f.dropbits_protect_ends = d.protect_ends;
  f.dropbits_mode = d.mode;
  f.dropbits_apply_to_activations = d.apply_to_activations;
  LearnBitsSpec l;
  f.learn_bits_enabled = l.enabled;
  f.learn_bits_lambda = l.lambda;
  f.learn_bits_max_bits = l.max_bits;
  f.learn_bits_init = l.init;
  QuantSpec s;
  f.calibration_batches = s.calibration_batches;
  f.calibration_init = s.act_init;
  f.calibration_percentile = s.act_percentile;
  return f;
}

}  // namespace

void QuantFields::merge(const QuantFields& later) {
  auto take = [](auto& mine, const auto& theirs) {
    if (theirs) mine = theirs;
  };
  take(method, later.method);
  take(weight_bits, later.weight_bits);
  take(act_bits, later.act_bits);
  take(per_channel, later.per_channel);
  take(act_signed, later.act_signed);
  take(grid, later.grid);
  take(dropbits_enabled, later.dropbits_enabled);
  take(dropbits_protect_ends, later.dropbits_protect_ends);
  take(dropbits_apply_to_activations, later.dropbits_apply_to_activations);
  take(dropbits_p, later.dropbits_p);
  take(dropbits_granularity, later.dropbits_granularity);
  take(dropbits_mode, later.dropbits_mode);
  take(learn_bits_enabled, later.learn_bits_enabled);
  take(learn_bits_lambda, later.learn_bits_lambda);
  take(learn_bits_init, later.learn_bits_init);
  take(learn_bits_max_bits, later.learn_bits_max_bits);
  take(calibration_batches, later.calibration_batches);
  take(calibration_init, later.calibration_init);
  take(calibration_percentile, later.calibration_percentile);
  for (const auto& [k, v] : later.options) options[k] = v;
}

QuantSettings parse_quant_config(const std::string& yaml_text) {
  QuantSettings s;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Error("YAML syntax error: " + e.msg, "quant config");
  }
  if (!root || root.IsNull()) return s;
  require_map(root, "quant");
  std::set<std::string> top = kFieldKeys;
  top.insert({"enabled", "overrides", "optim", "fixed_bits_from", "layers"});
  check_keys(root, "quant", top);
  s.enabled = root["enabled"] ? as_bool(root["enabled"], "quant.enabled") : true;
  s.defaults = default_fields();
  QuantFields given;
  parse_fields(root, "quant", given);
  s.defaults.merge(given);

  if (auto o = root["overrides"]) {
    if (!o.IsSequence()) fail("quant.overrides", "expected a list, got " + describe(o));
    for (size_t i = 0; i < o.size(); ++i) {
      QuantOverride ov;
      ov.path = "quant.overrides[" + std::to_string(i) + "]";
      require_map(o[i], ov.path);
      std::set<std::string> keys = kFieldKeys;
      keys.insert("match");
      check_keys(o[i], ov.path, keys);
      if (!o[i]["match"]) fail(ov.path + ".match", "missing: each override names the layers it applies to (a glob)");
      ov.match = scalar(o[i]["match"], ov.path + ".match");
      if (ov.match.empty()) fail(ov.path + ".match", "empty pattern");
      parse_fields(o[i], ov.path, ov.fields);
      s.overrides.push_back(std::move(ov));
    }
  }
  if (auto o = root["optim"]) {
    require_map(o, "quant.optim");
    check_keys(o, "quant.optim", {"lr", "weight_decay", "match"});
    if (auto v = o["lr"]) {
      s.optim.lr = as_double(v, "quant.optim.lr");
      if (*s.optim.lr < 0) fail("quant.optim.lr", "must be >= 0");
    }
    if (auto v = o["weight_decay"]) {
      s.optim.weight_decay = as_double(v, "quant.optim.weight_decay");
      if (s.optim.weight_decay < 0) fail("quant.optim.weight_decay", "must be >= 0");
    }
    if (auto v = o["match"]) {
      if (!v.IsSequence()) fail("quant.optim.match", "expected a list of globs, got " + describe(v));
      s.optim.patterns.clear();
      for (size_t i = 0; i < v.size(); ++i)
        s.optim.patterns.push_back(scalar(v[i], "quant.optim.match[" + std::to_string(i) + "]"));
    }
  }
  if (auto v = root["fixed_bits_from"]) s.fixed_bits_from = scalar(v, "quant.fixed_bits_from");
  if (auto v = root["layers"]) {
    if (!v.IsSequence()) fail("quant.layers", "expected a list of conv | linear, got " + describe(v));
    s.layers.clear();
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string p = "quant.layers[" + std::to_string(i) + "]";
      const std::string kind = scalar(v[i], p);
      if (kind != "conv" && kind != "linear") fail(p, "expected conv | linear, got '" + kind + "'");
      s.layers.push_back(kind);
    }
  }
  return s;
}

LayerQuantSpec resolve_layer(const QuantSettings& settings, const std::string& name, const Shape& weight_shape) {
  LayerQuantSpec out;
  QuantFields f = settings.defaults;
  out.sources.push_back("quant");
  for (const auto& ov : settings.overrides) {
    if (!glob_match(ov.match, name)) continue;
    f.merge(ov.fields);
    out.sources.push_back(ov.path);
  }
  std::string from;
  for (const auto& s : out.sources) from += (from.empty() ? "" : ", ") + s;
  const std::string where = "layer '" + name + "' (settings from " + from + ")";

  const QuantizerEntry& entry = find_quantizer(*f.method);
  const QuantizerCapabilities& caps = entry.capabilities;
  for (const auto& [key, value] : f.options) {
    bool known = false;
    for (const auto& o : caps.options) known = known || o == key;
    std::string list;
    for (const auto& o : caps.options) list += (list.empty() ? "" : ", ") + o;
    LOWBIT_CHECK(known, where, "quant.options." + key + ": method '", *f.method, "' has no option '", key,
                 "' (its options: ", list.empty() ? "none" : list, ")");
  }
  LOWBIT_CHECK(!*f.learn_bits_enabled || caps.learn_bits, where, "quant.learn_bits: method '", *f.method,
               "' does not support learned bit-widths");
  LOWBIT_CHECK(!*f.dropbits_enabled || caps.dropbits, where, "quant.dropbits: method '", *f.method,
               "' does not support DropBits");
  LOWBIT_CHECK(!*f.per_channel || caps.per_channel, where, "quant.per_channel: method '", *f.method,
               "' has no per-channel mode");
  LOWBIT_CHECK(*f.act_bits == 32 || caps.activations, where, "quant.act_bits: method '", *f.method,
               "' quantizes weights only; set act_bits: 32 or use another method for activations");
  LOWBIT_CHECK(*f.grid != GridKind::symmetric || *f.weight_bits >= 2, where,
               "quant.grid: the symmetric grid needs weight_bits >= 2");

  QuantSpec base;
  base.method = *f.method;
  base.grid = *f.grid;
  base.options = f.options;
  base.calibration_batches = *f.calibration_batches;
  base.act_init = *f.calibration_init;
  base.act_percentile = *f.calibration_percentile;
  base.dropbits.enabled = *f.dropbits_enabled;
  base.dropbits.p = *f.dropbits_p;
  base.dropbits.granularity = *f.dropbits_granularity;
  base.dropbits.protect_ends = *f.dropbits_protect_ends;
  base.dropbits.mode = *f.dropbits_mode;
  base.dropbits.apply_to_activations = *f.dropbits_apply_to_activations;
  if (*f.weight_bits != 32) {
    QuantSpec w = base;
    w.role = QuantRole::weight;
    w.bits = *f.weight_bits;
    w.is_signed = true;
    w.per_channel = *f.per_channel;
    w.shape = weight_shape;
    w.learn_bits.enabled = *f.learn_bits_enabled;
    w.learn_bits.lambda = *f.learn_bits_lambda;
    w.learn_bits.max_bits = *f.learn_bits_max_bits;
    w.learn_bits.init = *f.learn_bits_init;
    LOWBIT_CHECK(!w.learn_bits.enabled || w.learn_bits.max_bits >= w.bits, where, "quant.learn_bits.max_bits (",
                 w.learn_bits.max_bits, ") is below weight_bits (", w.bits, ")");
    out.weight = w;
  }
  if (*f.act_bits != 32) {
    QuantSpec a = base;
    a.role = QuantRole::activation;
    a.bits = *f.act_bits;
    a.signed_auto = *f.act_signed == "auto";
    a.is_signed = *f.act_signed == "true";
    a.dropbits.enabled = base.dropbits.enabled && base.dropbits.apply_to_activations;
    out.activation = a;
  }
  return out;
}

}  // namespace lowbit
