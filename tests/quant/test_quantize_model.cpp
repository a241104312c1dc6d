// Tests of the model transform: zoo models, float checkpoints with missing quantizer keys, report totals.
#include <catch2/catch.hpp>

#include <fstream>

#include "core/autograd.h"
#include "core/ops/reduce.h"
#include "layers/activation.h"
#include "layers/zoo.h"
#include "quant/lsq.h"
#include "quant/qconv2d.h"
#include "quant/quantize_model.h"
#include "quant/report.h"
#include "support/test_util.h"

using namespace lowbit;
using lowbit::test::error_of;

namespace {

ModulePtr lenet(uint64_t seed) {
  Generator g(seed);
  return build_model("lenet5", {}, g);
}

Tensor images(int64_t n, uint64_t seed) {
  Generator g(seed);
  return Tensor::rand({n, 1, 28, 28}, g);
}

// What the trainer does after a non-strict load: each module derives its own missing entries.
std::vector<std::string> init_missing(Module& root, const LoadReport& rep) {
  std::vector<std::string> left;
  for (auto& [prefix, m] : root.named_modules()) {
    const std::string pre = prefix.empty() ? "" : prefix + ".";
    std::vector<std::string> own;
    for (const auto& n : rep.missing)
      if (n.compare(0, pre.size(), pre) == 0 && n.find('.', pre.size()) == std::string::npos)
        own.push_back(n.substr(pre.size()));
    if (own.empty()) continue;
    for (const auto& l : m->initialize_missing(own)) left.push_back(pre + l);
  }
  return left;
}

// The trainer's calibration pass: forwards without gradients, then end_calibration everywhere.
void calibrate(Module& root, const Tensor& x) {
  int64_t n = 0;
  for (auto& [name, m] : root.named_modules()) n = std::max(n, m->calibration_batches());
  {
    NoGradGuard guard;
    for (int64_t i = 0; i < n; ++i) root.forward(x);
  }
  for (auto& [name, m] : root.named_modules()) m->end_calibration();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("quantize_model: lenet5 layers, names, overrides and the parameter group", "[quant][model]") {
  ModulePtr net = lenet(1);
  Tensor w0 = net->parameter("weight");  // none at the root
  CHECK_FALSE(w0.defined());
  NamedTensors before = net->state_dict();
  QuantizeResult r = quantize_model(*net, R"(
method: lsq
weight_bits: 4
act_bits: 4
overrides:
  - {match: "0", weight_bits: 8, act_bits: 32}
  - {match: "9", act_bits: 8}
)");
  REQUIRE(r.layers.size() == 4);
  CHECK(r.layers[0].name == "0");
  CHECK(r.layers[0].kind == "conv");
  CHECK(r.layers[3].name == "9");
  CHECK(r.layers[3].kind == "linear");
  CHECK(r.layers[0].wq->bits() == 8);
  CHECK(r.layers[0].aq == nullptr);
  CHECK(r.layers[1].wq->bits() == 4);
  CHECK(r.layers[3].aq->bits() == 8);
  // Weights are the model's own (quantized in place), quantizer state under the layer.
  NamedTensors sd = net->state_dict();
  std::vector<std::string> names;
  for (const auto& [n, t] : sd) names.push_back(n);
  for (const auto* want :
       {"0.weight", "0.bias", "0.wq.alpha_raw", "3.wq.alpha_raw", "3.aq.alpha_raw", "9.aq.is_signed"})
    CHECK(std::find(names.begin(), names.end(), want) != names.end());
  CHECK(std::find(names.begin(), names.end(), "0.aq.alpha_raw") == names.end());
  for (const auto& [n, t] : before) {
    auto it = std::find_if(sd.begin(), sd.end(), [&](const auto& e) { return e.first == n; });
    REQUIRE(it != sd.end());
    CHECK(it->second.is_same(t));
  }
  CHECK(r.group_parameters == std::vector<std::string>{"0.wq.alpha_raw", "3.wq.alpha_raw", "3.aq.alpha_raw",
                                                       "7.wq.alpha_raw", "7.aq.alpha_raw", "9.wq.alpha_raw",
                                                       "9.aq.alpha_raw"});
  // Typed members keep working: a conv of a CIFAR ResNet quantized in place is used by forward.
  Generator g(2);
  ModulePtr res = build_model("resnet20", {}, g);
  quantize_model(*res, "method: ste_uniform\nweight_bits: 2\nact_bits: 32");
  auto* resnet = dynamic_cast<CifarResNet*>(res.get());
  REQUIRE(resnet);
  CHECK(weight_quantizer(*resnet->conv1) != nullptr);
}

TEST_CASE("quantize_model: the quantized forward trains alpha and weights after calibration", "[quant][model]") {
  ModulePtr net = lenet(3);
  quantize_model(*net, "method: lsq\nweight_bits: 2\nact_bits: 2\ncalibration: {batches: 2}");
  CHECK(net->child("3")->child("aq")->calibration_batches() == 2);
  Tensor x = images(4, 5);
  calibrate(*net, x);
  auto aq = activation_quantizer(*net->child("3"));
  CHECK(aq->initialized());
  CHECK_FALSE(aq->is_signed());  // after ReLU + max-pool every input is >= 0
  CHECK(activation_quantizer(*net->child("0"))->initialized());
  Tensor loss = sum(net->forward(x));
  loss.backward();
  CHECK(net->child("3")->parameter("weight").grad().defined());
  CHECK(net->child("3")->child("wq")->parameter("alpha_raw").grad().defined());
  CHECK(net->child("7")->child("aq")->parameter("alpha_raw").grad().defined());
}

TEST_CASE("quantize_model: a float lenet5 checkpoint loads and missing quantizer keys are derived", "[quant][model]") {
  ModulePtr fp = lenet(10);
  NamedTensors ckpt = fp->state_dict();
  ModulePtr q = lenet(11);  // other weights: the load must replace them
  quantize_model(*q, "method: lsq\nweight_bits: 3\nact_bits: 4\nper_channel: true");
  LoadReport rep = q->load_state_dict(ckpt, false);
  CHECK(rep.unexpected.empty());
  CHECK(rep.shape_mismatch.empty());
  CHECK(std::find(rep.missing.begin(), rep.missing.end(), "3.wq.alpha_raw") != rep.missing.end());
  for (const auto& n : rep.missing) CHECK((has(n, ".wq.") || has(n, ".aq.")));
  CHECK(init_missing(*q, rep).empty());
  // The weight quantizer's step is the one a fresh quantizer derives from the loaded weight.
  auto wq = weight_quantizer(*q->child("3"));
  QuantSpec s = wq->spec();
  LsqQuantizer fresh(s);
  fresh.initialize(fp->child("3")->parameter("weight"));
  CHECK(wq->step().to_vector<float>() == fresh.step().to_vector<float>());
  // Activation quantizers wait for the calibration pass.
  CHECK(activation_quantizer(*q->child("3"))->calibration_batches() > 0);
  // And a quantized checkpoint loads strictly into a quantized model.
  ModulePtr q2 = lenet(12);
  quantize_model(*q2, "method: lsq\nweight_bits: 3\nact_bits: 4\nper_channel: true");
  CHECK_NOTHROW(q2->load_state_dict(q->state_dict(), true));
}

TEST_CASE("quantize_model: errors leave the model unchanged", "[quant][model]") {
  ModulePtr net = lenet(4);
  CHECK(has(error_of([&] { quantize_model(*net, "method: lsq\noverrides: [{match: 'features.*', weight_bits: 8}]"); }),
            "quant.overrides[0].match: pattern 'features.*' matches no quantizable layer (layers: 0, 3, 7, 9)"));
  CHECK(has(
      error_of([&] { quantize_model(*net, "method: lsq\noverrides: [{match: '9', learn_bits: {enabled: true}}]"); }),
      "does not support learned bit-widths"));
  CHECK(has(error_of([&] { quantize_model(*net, "method: unknown_method"); }), "unknown method 'unknown_method'"));
  for (auto& [name, m] : net->named_modules()) CHECK_FALSE(m->child("wq"));
  quantize_model(*net, "method: lsq");
  CHECK(has(error_of([&] { quantize_model(*net, "method: lsq"); }), "already quantized"));
  // An absent section changes nothing.
  ModulePtr other = lenet(4);
  CHECK(quantize_model(*other, "").layers.empty());
}

TEST_CASE("quant_report: totals on a hand-computed model", "[quant][report]") {
  Generator g(1);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Linear>(4, 3, true, g));  // 12 weights at 2 bits
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Linear>(3, 2, true, g));  // 6 weights left in float
  quantize_model(*net, "method: ste_uniform\nweight_bits: 2\nact_bits: 32\noverrides: [{match: '2', weight_bits: 32}]");
  QuantModelReport r = quant_report(*net);
  REQUIRE(r.layers.size() == 2);
  CHECK(r.layers[0].weight_bits == 2);
  CHECK(r.layers[1].weight_bits == 32);
  CHECK(r.layers[1].method == "float");
  CHECK(r.total_weights == 18);
  CHECK(r.avg_weight_bits == Approx((12 * 2 + 6 * 32) / 18.0));
  CHECK(r.float_layers == 1);
  CHECK(r.weight_bytes == 3 + 24);
  CHECK(r.weight_float_bytes == 72);
  CHECK(r.model_bytes == 27 + 4 * 5 + 4);  // + biases in float + one f32 step
  CHECK(r.model_float_bytes == 72 + 20);
  CHECK(r.weight_compression() == Approx(72.0 / 27));
  // Occupancy counts every weight once, on the 2-bit grid -2..1.
  CHECK(r.layers[0].weight.qmin == -2);
  REQUIRE(r.layers[0].weight.occupancy.size() == 4);
  int64_t total = 0;
  for (auto c : r.layers[0].weight.occupancy) total += c;
  CHECK(total == 12);
  CHECK(r.layers[0].weight.occupancy[3] >= 1);  // the max-abs weight sits on qmax (or qmin)
  CHECK(has(r.table(), "1 layer(s) left in float"));
  CHECK(has(r.short_line(), "W bits avg 12.00 [2 32]"));
  CHECK(r.bits_map().at("0.weight_bits") == 2);
  const auto scales = r.scales_map();
  CHECK(scales.at("0.weight_alpha") == Approx(r.layers[0].weight.alpha[0]));
  const auto& occ = r.layers[0].weight.occupancy;
  CHECK(scales.at("0.weight_clipped") == Approx((occ[0] + occ[3]) / 12.0));
  CHECK(scales.at("0.weight_clipped") > 0);  // the max-abs weight
  CHECK(scales.count("0.weight_sigma") == 0);  // the method has no sigma
  CHECK(scales.count("1.weight_alpha") == 0);  // the float layer
  CHECK(has(r.to_json(), "\"avg_weight_bits\": 12.0"));
}

TEST_CASE("quantize_model: fixed_bits_from takes per-layer bits from a report", "[quant][model]") {
  test::TempDir dir("quantfw_fixed");
  ModulePtr a = lenet(1);
  quantize_model(*a,
                 "method: lsq\nweight_bits: 4\nact_bits: 4\noverrides: [{match: '3', weight_bits: 2}, "
                 "{match: '9', weight_bits: 8, act_bits: 32}]");
  {
    std::ofstream out(dir.file("quant_report.json"));
    out << quant_report(*a).to_json();
  }
  ModulePtr b = lenet(2);
  quantize_model(*b, "method: lsq\nweight_bits: 6\nfixed_bits_from: " + dir.file("quant_report.json"));
  QuantModelReport rb = quant_report(*b);
  std::vector<int> wb, ab;
  for (const auto& l : rb.layers) wb.push_back(l.weight_bits), ab.push_back(l.act_bits);
  CHECK(wb == std::vector<int>{4, 2, 4, 8});
  CHECK(ab == std::vector<int>{4, 4, 4, 32});
  // A report of another model does not fit.
  Generator g(3);
  ModulePtr mlp = build_model("mlp", {}, g);
  CHECK(has(error_of([&] { quantize_model(*mlp, "method: lsq\nfixed_bits_from: " + dir.file("quant_report.json")); }),
            "is not a quantizable layer of this model"));
  CHECK(has(error_of([&] { quantize_model(*mlp, "method: lsq\nfixed_bits_from: " + dir.file("nope.json")); }),
            "cannot open the quant report"));
  // Bits are read as written: no rounding of 2.5, no wrap-around of 2^32 + 2, no 20-bit layers.
  for (const auto& [bad, expect] : std::vector<std::pair<std::string, std::string>>{
           {"2.5", "\"weight_bits\" must be an integer in 1..32, got 2.5"},
           {"4294967298", "\"weight_bits\" must be an integer in 1..32, got 4294967298"},
           {"20", "\"weight_bits\" must be in 1..16 or 32 (float), got 20"},
           {"true", "\"weight_bits\" must be an integer in 1..32, got true"}}) {
    {
      std::ofstream out(dir.file("bad.json"));
      out << R"({"layers": [{"name": "0", "weight_bits": )" << bad << R"(, "act_bits": 4}]})";
    }
    ModulePtr c = lenet(3);
    const std::string e = error_of([&] { quantize_model(*c, "method: lsq\nfixed_bits_from: " + dir.file("bad.json")); });
    INFO(e);
    CHECK(has(e, "bad.json"));
    CHECK(has(e, "layers[0]: " + expect));
  }
}
