// Model zoo tests: state_dict keys, order, shapes and parameter counts equal the PyTorch
// definitions' (tests/fixtures/zoo_keys.json), forward output shapes, option and name errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/ops/reduce.h"
#include "layers/zoo.h"
#include "support/fixture_values.h"

using namespace lowbit;
using json = nlohmann::json;

namespace {

const json& fixtures() {
  static const json j = [] {
    std::ifstream f(std::string(LOWBIT_FIXTURES_DIR) + "/zoo_keys.json");
    REQUIRE(f.good());
    return json::parse(f);
  }();
  return j;
}

ModelOptions options_from(const json& o) {
  ModelOptions opt;
  if (o.contains("batch_norm")) opt.batch_norm = o["batch_norm"].get<bool>();
  if (o.contains("shortcut")) opt.shortcut = o["shortcut"].get<std::string>().at(0);
  return opt;
}

int64_t count_params(const Module& m) {
  int64_t n = 0;
  for (const auto& t : m.parameters()) n += t.numel();
  return n;
}

}  // namespace

TEST_CASE("zoo: forward shapes and values equal the PyTorch definitions' with the same parameters") {
  for (const auto& m : fixtures()["models"]) {
    INFO("model " << m["entry"].get<std::string>());
    Generator gen(5);
    ModulePtr net = build_model(m["model"].get<std::string>(), options_from(m["options"]), gen);
    test::set_wave_params(*net);
    Tensor out = net->forward(test::wave(m["input"].get<Shape>(), 0.11, 0.0));
    CHECK(out.shape() == m["output"].get<Shape>());
    // Gradients reach the first layer's weight (on the cheaper models, to keep the test fast).
    const std::string entry = m["entry"].get<std::string>();
    if (entry == "mlp" || entry == "lenet5_bn" || entry == "resnet20" || entry == "resnet20_B") {
      sum(out).backward();
      CHECK(net->parameters().front().grad().defined());
    }
    std::vector<float> y = out.to_vector<float>();
    std::vector<float> expected = m["output_values"].get<std::vector<float>>();
    REQUIRE(y.size() == expected.size());
    double scale = 0;
    for (float e : expected) scale = std::max(scale, double(std::abs(e)));
    for (size_t i = 0; i < y.size(); ++i) CHECK(std::abs(y[i] - expected[i]) <= 1e-4 * scale + 1e-5);
  }
}

TEST_CASE("zoo: every model's state_dict matches its PyTorch definition") {
  const json& models = fixtures()["models"];
  REQUIRE(models.size() >= model_names().size());
  std::vector<std::string> covered;
  for (const auto& m : models) {
    const std::string entry = m["entry"].get<std::string>();
    INFO("model " << entry);
    Generator gen(1);
    ModulePtr net = build_model(m["model"].get<std::string>(), options_from(m["options"]), gen);
    covered.push_back(m["model"].get<std::string>());

    NamedTensors sd = net->state_dict();
    const json& expected = m["state_dict"];
    REQUIRE(sd.size() == expected.size());
    for (size_t i = 0; i < sd.size(); ++i) {
      INFO("entry " << i);
      CHECK(sd[i].first == expected[i][0].get<std::string>());
      CHECK(sd[i].second.shape() == expected[i][1].get<Shape>());
    }
    CHECK(count_params(*net) == m["num_params"].get<int64_t>());
  }
  for (const auto& name : model_names()) {
    INFO("model " << name << " has no fixture entry");
    CHECK(std::find(covered.begin(), covered.end(), name) != covered.end());
  }
}

TEST_CASE("zoo: options change the shapes") {
  Generator gen(3);
  SECTION("num_classes, in_channels and image_size") {
    ModelOptions opt;
    opt.num_classes = 7;
    opt.in_channels = 2;
    for (const char* name : {"mlp", "lenet5", "vgg7", "vgg_small", "resnet20"}) {
      INFO(name);
      opt.image_size = std::string(name) == "mlp" || std::string(name) == "lenet5" ? 20 : 16;
      ModulePtr net = build_model(name, opt, gen);
      net->eval();
      Tensor y = net->forward(Tensor::randn({2, 2, opt.image_size, opt.image_size}, gen));
      CHECK(y.shape() == Shape{2, 7});
    }
  }
  SECTION("mlp hidden widths") {
    ModelOptions opt;
    opt.hidden = {};
    auto sd = build_model("mlp", opt, gen)->state_dict();
    REQUIRE(sd.size() == 2);
    CHECK(sd[0].first == "1.weight");
    CHECK(sd[0].second.shape() == Shape{10, 784});
    opt.hidden = {64, 32, 16};
    sd = build_model("mlp", opt, gen)->state_dict();
    REQUIRE(sd.size() == 8);
    CHECK(sd[6].first == "7.weight");
    CHECK(sd[6].second.shape() == Shape{10, 16});
  }
  SECTION("resnet18 at 32x32 and 64x64") {
    ModulePtr net = build_model("resnet18", {}, gen);
    net->eval();
    CHECK(net->forward(Tensor::randn({2, 3, 32, 32}, gen)).shape() == Shape{2, 10});
    CHECK(net->forward(Tensor::randn({2, 3, 64, 64}, gen)).shape() == Shape{2, 10});
    CHECK_THROWS_AS(net->forward(Tensor::randn({2, 3, 16, 16}, gen)), Error);
  }
}

TEST_CASE("zoo: initialisation follows the PyTorch definitions") {
  Generator gen(4);
  auto std_of = [](const Tensor& t) {
    std::vector<float> v = t.to_vector<float>();
    double s = 0, s2 = 0;
    for (float a : v) s += a, s2 += double(a) * a;
    double mean = s / v.size();
    return std::sqrt(s2 / v.size() - mean * mean);
  };
  // torchvision: kaiming_normal_(fan_out, relu): std = sqrt(2 / (out * k * k)).
  auto r18 = build_model("resnet18", {}, gen);
  Tensor w = r18->state_dict()[0].second;
  CHECK(std_of(w) == Approx(std::sqrt(2.0 / (64 * 49))).epsilon(0.05));
  // CIFAR ResNet: kaiming_normal_ (fan_in): std = sqrt(2 / (in * k * k)).
  auto r20 = build_model("resnet20", {}, gen);
  for (const auto& [n, t] : r20->state_dict())
    if (n == "layer3.2.conv2.weight") CHECK(std_of(t) == Approx(std::sqrt(2.0 / (64 * 9))).epsilon(0.05));
  // BatchNorm starts at weight 1, bias 0.
  for (const auto& [n, t] : r18->state_dict())
    if (n == "bn1.weight") CHECK(t.to_vector<float>() == std::vector<float>(64, 1.0f));
}

TEST_CASE("zoo: unknown names and bad options are errors") {
  try {
    build_model("resnet99", {});
    FAIL("no error");
  } catch (const Error& e) {
    std::string msg = e.what();
    CHECK(msg.find("build_model") != std::string::npos);
    CHECK(msg.find("resnet99") != std::string::npos);
    for (const auto& name : model_names()) CHECK(msg.find(name) != std::string::npos);
  }
  ModelOptions bad;
  bad.shortcut = 'C';
  CHECK_THROWS_AS(build_model("resnet20", bad), Error);
  bad = {};
  bad.num_classes = 0;
  CHECK_THROWS_AS(build_model("mlp", bad), Error);
  bad = {};
  bad.image_size = 8;
  CHECK_THROWS_AS(build_model("lenet5", bad), Error);
  CHECK(model_names() == std::vector<std::string>{"mlp", "lenet5", "vgg7", "vgg_small", "resnet20", "resnet32",
                                                  "resnet44", "resnet56", "resnet18"});
}
