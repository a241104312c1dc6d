// One training step of a quantized LeNet-5 and MLP equals PyTorch's on the same weights and
// batch: loss, logits and the gradients (weights, biases, BatchNorm, alpha, sigma), for
// ste_uniform, LSQ and CPQ written in PyTorch from QUANTIZERS.md
// (tests/fixtures/make_quant_golden.py). LeNet-5's gradients are compared from its last max
// pool on: above it, pool windows of a quantized network hold equal values whose winner
// depends on the last bit of each sum (the generator's docstring has the measurement).
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/ops/loss.h"
#include "core/safetensors.h"
#include "layers/zoo.h"
#include "quant/quantize_model.h"
#include "support/fixture_values.h"

using namespace lowbit;

namespace {

const SafetensorsFile& golden() {
  static const SafetensorsFile f = load_safetensors(std::string(LOWBIT_FIXTURES_DIR) + "/quant_golden.safetensors");
  return f;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// |a - b| <= rtol |b| + 1e-7 sqrt(n) in the L2 sense (the floor for the gradients of biases
// that feed a BatchNorm, which are zero but for rounding).
bool close(const std::vector<float>& a, const std::vector<float>& b, double rtol, double* rel = nullptr) {
  REQUIRE(a.size() == b.size());
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    n += double(b[i]) * b[i];
  }
  if (rel) *rel = std::sqrt(d) / std::max(std::sqrt(n), 1e-30);
  return std::sqrt(d) <= rtol * std::sqrt(n) + 1e-7 * std::sqrt(double(a.size()));
}

// The layers whose gradients are compared: everything after LeNet-5's last pool (module 7).
bool compared_layer(const std::string& model, const std::string& param) {
  if (model == "mlp") return true;
  const int layer = std::stoi(param.substr(0, param.find('.')));
  return layer > 7;
}

void check_case(const std::string& name, const std::string& model, const std::string& quant_yaml) {
  INFO("case " << name);
  const SafetensorsFile& g = golden();
  Generator gen(0);
  ModelOptions o;
  if (model == "lenet5") o.batch_norm = true;
  if (model == "mlp") o.hidden = {128, 64};
  ModulePtr net = build_model(model, o, gen);
  test::set_hashed_params(*net);  // before quantizing: the fixture numbers the float model's parameters
  quantize_model(*net, quant_yaml);
  NamedTensors state;
  const std::string prefix = name + ".state.";
  for (const auto& [n, t] : g.tensors)
    if (starts_with(n, prefix)) state.emplace_back(n.substr(prefix.size()), t);
  LoadReport r = net->load_state_dict(state, false);
  REQUIRE(r.unexpected.empty());
  REQUIRE(r.shape_mismatch.empty());
  for (const auto& m : r.missing) CHECK((m.find(".wq.") == std::string::npos && m.find(".aq.") == std::string::npos));
  net->train();

  const int64_t batch = 8;
  Tensor x = test::hashed_uniform({batch, 1, 28, 28}, 1000, -1.0, 1.0);
  std::vector<int64_t> y(batch);
  for (int64_t i = 0; i < batch; ++i) y[static_cast<size_t>(i)] = i % 10;
  Tensor logits = net->forward(x);
  Tensor loss = cross_entropy(logits, Tensor::from_vector(y, {batch}));
  loss.backward();

  CHECK(std::abs(loss.item() - g.at(name + ".loss").item()) <= 1e-5 * std::abs(g.at(name + ".loss").item()));
  CHECK(close(logits.to_vector<float>(), g.at(name + ".logits").to_vector<float>(), 1e-5));
  int compared = 0, total = 0;
  for (const auto& [n, p] : net->named_parameters()) {
    INFO("parameter " << n);
    REQUIRE(p.grad().defined());
    ++total;
    if (!compared_layer(model, n)) continue;
    const std::vector<float> grad = p.grad().to_vector<float>();
    if (const Tensor* full = g.find(name + ".grad." + n)) {
      const std::vector<float> want = full->to_vector<float>();
      double e = 0;
      const bool ok = close(grad, want, 1e-4, &e);
      INFO("relative L2 error " << e << ", first " << grad.at(0) << " vs " << want.at(0));
      CHECK(ok);
    } else {
      const std::vector<float> want = g.at(name + ".gradsample." + n).to_vector<float>();
      const size_t stride = grad.size() / 4096 + 1;  // make_quant_golden.py's SAMPLED
      std::vector<float> sample;
      double norm = 0;
      for (size_t i = 0; i < grad.size(); ++i) {
        if (i % stride == 0) sample.push_back(grad[i]);
        norm += double(grad[i]) * grad[i];
      }
      const double want_norm = g.at(name + ".gradnorm." + n).item();
      INFO("norm " << std::sqrt(norm) << " vs " << want_norm);
      CHECK(close(sample, want, 1e-4));
      CHECK(std::abs(std::sqrt(norm) - want_norm) <= 1e-4 * want_norm);
    }
    ++compared;
  }
  int stored = 0;  // the fixture has a gradient for every parameter, so none was left out here
  for (const auto& [n, t] : g.tensors)
    stored += starts_with(n, name + ".grad.") || starts_with(n, name + ".gradsample.");
  CHECK(stored == total);
  // LeNet-5 leaves out 0, 1, 4, 5 (weight and bias each) and the quantizers of 0 and 4: half of
  // the quantizer parameters, which are those beyond its 14 float ones.
  CHECK(compared == (model == "mlp" ? total : total - 8 - (total - 14) / 2));
}

}  // namespace

TEST_CASE("quantized training step equals PyTorch: ste_uniform", "[quant][torch]") {
  check_case("lenet5_ste_uniform_w2a2", "lenet5", "method: ste_uniform\nweight_bits: 2\nact_bits: 2");
  check_case("mlp_ste_uniform_w3a3", "mlp", "method: ste_uniform\nweight_bits: 3\nact_bits: 3");
}

TEST_CASE("quantized training step equals PyTorch: LSQ 2/2", "[quant][torch]") {
  check_case("lenet5_lsq_w2a2", "lenet5", "method: lsq\nweight_bits: 2\nact_bits: 2");
  check_case("mlp_lsq_w2a2", "mlp", "method: lsq\nweight_bits: 2\nact_bits: 2");
}

TEST_CASE("quantized training step equals PyTorch: CPQ 2/2", "[quant][torch]") {
  check_case("lenet5_cpq_w2a2", "lenet5", "method: cpq\nweight_bits: 2\nact_bits: 2");
  check_case("mlp_cpq_w2a2", "mlp", "method: cpq\nweight_bits: 2\nact_bits: 2");
}

TEST_CASE("quantized training step equals PyTorch: CPQ per-channel weights, with and without the direct alpha term",
          "[quant][torch]") {
  check_case("lenet5_cpq_w3a3_channel_nodirect", "lenet5",
             "method: cpq\nweight_bits: 3\nact_bits: 3\nper_channel: true\noptions: {alpha_direct_grad: false}");
  check_case("mlp_cpq_w4a4_channel", "mlp", "method: cpq\nweight_bits: 4\nact_bits: 4\nper_channel: true");
}
