// Tests of the quant: config section: parsing, key-path errors, overrides and their precedence.
#include <catch2/catch.hpp>

#include "quant/quant_config.h"
#include "support/test_util.h"

using namespace lowbit;
using lowbit::test::error_of;

namespace {
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("quant config: defaults, the full shape, and an empty section", "[quant][config]") {
  CHECK_FALSE(parse_quant_config("").enabled);
  QuantSettings s = parse_quant_config(R"(
method: lsq
weight_bits: 2
act_bits: 4
per_channel: true
act_signed: false
calibration: {batches: 3, init: max}
optim: {lr: 0.001, weight_decay: 0.0}
overrides:
  - {match: "features.0", weight_bits: 8, act_bits: 32}
)");
  CHECK(s.enabled);
  CHECK(*s.defaults.method == "lsq");
  CHECK(*s.defaults.weight_bits == 2);
  CHECK(*s.defaults.act_bits == 4);
  CHECK(*s.defaults.grid == GridKind::rq);  // a default left as documented
  REQUIRE(s.overrides.size() == 1);
  CHECK(s.optim.lr == 0.001);
  LayerQuantSpec l = resolve_layer(s, "features.3", {64, 32, 5, 5});
  REQUIRE(l.weight);
  REQUIRE(l.activation);
  CHECK(l.weight->bits == 2);
  CHECK(l.weight->per_channel);
  CHECK(l.weight->channels() == 64);
  CHECK(l.activation->bits == 4);
  CHECK_FALSE(l.activation->is_signed);
  CHECK_FALSE(l.activation->signed_auto);
  CHECK(l.activation->calibration_batches == 3);
  CHECK(l.activation->act_init == "max");
  LayerQuantSpec first = resolve_layer(s, "features.0", {32, 1, 5, 5});
  REQUIRE(first.weight);
  CHECK(first.weight->bits == 8);
  CHECK_FALSE(first.activation);  // 32 bits: no quantizer
}

TEST_CASE("quant config: overrides apply in file order, later wins, defaults fill the rest", "[quant][config]") {
  QuantSettings s = parse_quant_config(R"(
method: ste_uniform
weight_bits: 4
act_bits: 4
overrides:
  - {match: "layer*", weight_bits: 3, act_bits: 3}
  - {match: "layer1.*", weight_bits: 2}
  - {match: "*.conv1", act_bits: 8}
)");
  auto w = [&](const std::string& name) { return resolve_layer(s, name, {4, 4}).weight->bits; };
  auto a = [&](const std::string& name) { return resolve_layer(s, name, {4, 4}).activation->bits; };
  CHECK(w("conv1") == 4);
  CHECK(w("layer2.0.conv1") == 3);
  CHECK(w("layer1.0.conv1") == 2);  // the second override wins over the first
  CHECK(a("layer1.0.conv1") == 8);  // the third sets only act_bits
  CHECK(a("layer1.0.conv2") == 3);  // from the first
  CHECK(resolve_layer(s, "layer1.0.conv1", {4, 4}).sources.size() == 4);
}

TEST_CASE("quant config: glob matching", "[quant][config]") {
  CHECK(glob_match("*", ""));
  CHECK(glob_match("*", "features.0"));
  CHECK(glob_match("features.0", "features.0"));
  CHECK_FALSE(glob_match("features.0", "features.03"));
  CHECK(glob_match("features.?", "features.3"));
  CHECK(glob_match("layer*.conv?", "layer3.2.conv1"));
  CHECK_FALSE(glob_match("layer*.conv?", "layer3.2.bn1"));
  CHECK(glob_match("*.wq.*", "features.0.wq.alpha_raw"));
}

TEST_CASE("quant config: each kind of error names the key path", "[quant][config]") {
  auto err = [](const std::string& yaml) { return error_of([&] { parse_quant_config(yaml); }); };
  CHECK(has(err("method: nope"), "quant.method: unknown method 'nope'; registered: "));
  CHECK(has(err("method: nope"), "lsq"));
  CHECK(has(err("weight_bits: 0"), "quant.weight_bits: bits must be in 1..16, or 32"));
  CHECK(has(err("act_bits: 17"), "quant.act_bits"));
  CHECK(has(err("weight_bits: two"), "quant.weight_bits: expected an integer, got 'two'"));
  CHECK(has(err("dropbits: {p: 2}"), "quant.dropbits.p: must be in [0, 1)"));
  CHECK(has(err("dropbits: {q: 1}"), "quant.dropbits.q: unknown key"));
  CHECK(has(err("dropbits: {granularity: rows}"), "quant.dropbits.granularity: expected per_element | per_tensor"));
  CHECK(has(err("learn_bits: {enabled: maybe}"), "quant.learn_bits.enabled: expected true or false"));
  CHECK(has(err("bits: 4"), "quant.bits: unknown key"));
  CHECK(has(err("act_signed: yes"), "quant.act_signed: expected auto | true | false"));
  CHECK(has(err("overrides: {match: x}"), "quant.overrides: expected a list"));
  CHECK(has(err("overrides: [{weight_bits: 2}]"), "quant.overrides[0].match: missing"));
  CHECK(has(err("overrides: [{match: a}, {match: b, wbits: 2}]"), "quant.overrides[1].wbits: unknown key"));
  CHECK(has(err("overrides: [{match: a, weight_bits: 40}]"), "quant.overrides[0].weight_bits"));
  CHECK(has(err("optim: {lr: -1}"), "quant.optim.lr: must be >= 0"));
  CHECK(has(err("layers: [conv, pool]"), "quant.layers[1]: expected conv | linear"));
  CHECK(has(err("method: [a, b]"), "quant.method: expected a value"));
  CHECK(has(err("method: lsq\n  bad indent: ["), "YAML syntax error"));

  // Checked per layer, against the method's capabilities.
  QuantSettings s = parse_quant_config("method: lsq\nlearn_bits: {enabled: true}");
  CHECK(has(error_of([&] {
              resolve_layer(s, "fc", {2, 2});
            }),
            "quant.learn_bits: method 'lsq' does not support learned bit-widths"));
  s = parse_quant_config("method: ste_uniform\ndropbits: {enabled: true}");
  CHECK(has(error_of([&] { resolve_layer(s, "fc", {2, 2}); }), "does not support DropBits"));
  s = parse_quant_config("method: lsq\noptions: {temperature: 0.5}");
  CHECK(has(error_of([&] {
              resolve_layer(s, "fc", {2, 2});
            }),
            "quant.options.temperature: method 'lsq' has no option"));
  s = parse_quant_config("method: lsq\noverrides: [{match: fc, learn_bits: {enabled: true}}]");
  std::string e = error_of([&] { resolve_layer(s, "fc", {2, 2}); });
  CHECK(has(e, "layer 'fc' (settings from quant, quant.overrides[0])"));
  CHECK(error_of([&] { resolve_layer(s, "conv", {2, 2}); }) == "(no error)");
}
