// Module tests: names and order as PyTorch's state_dict, loading, modes, parameter replacement.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/ops/reduce.h"
#include "layers/activation.h"
#include "layers/basic_block.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/sequential.h"

using namespace lowbit;

namespace {

std::vector<std::string> keys(const NamedTensors& entries) {
  std::vector<std::string> out;
  for (const auto& [n, t] : entries) out.push_back(n);
  return out;
}

std::shared_ptr<Sequential> small_net() {
  Generator gen(7);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Conv2d>(3, 4, std::array<int64_t, 2>{3, 3}, Conv2dOptions{}, true, gen));
  net->push_back(std::make_shared<BatchNorm2d>(4));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Linear>(4 * 6 * 6, 5, true, gen));
  return net;
}

// A module with its own parameter, buffer and children, to check PyTorch's order
// (own parameters, own buffers, then children) independently of registration interleaving.
struct Outer : Module {
  Outer() : Module("Outer") {
    register_module("fc", std::make_shared<Linear>(2, 2));
    register_buffer("buf", Tensor::zeros({1}));
    register_module("inner", std::make_shared<Linear>(2, 3));
    register_parameter("w", Tensor::zeros({1}));
  }
};

}  // namespace

TEST_CASE("state_dict keys of a nested Sequential match PyTorch 1.13") {
  auto net = small_net();
  // nn.Sequential(Conv2d(3,4,3), BatchNorm2d(4), ReLU(), Flatten(), Linear(144,5)).state_dict().keys()
  std::vector<std::string> expected = {"0.weight",       "0.bias",        "1.weight",
                                       "1.bias",         "1.running_mean", "1.running_var",
                                       "1.num_batches_tracked", "4.weight", "4.bias"};
  REQUIRE(keys(net->state_dict()) == expected);
  REQUIRE(keys(net->named_parameters()) ==
          std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"});
  REQUIRE(keys(net->named_buffers()) ==
          std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked"});
  REQUIRE(net->state_dict()[6].second.dtype() == DType::i64);
  REQUIRE(net->state_dict()[6].second.dim() == 0);
  REQUIRE(net->parameters().size() == 6);
  for (const auto& p : net->parameters()) REQUIRE(p.requires_grad());

  auto mods = net->named_modules();
  REQUIRE(mods.size() == 6);
  REQUIRE(mods[0].first.empty());
  REQUIRE(mods[0].second == net.get());
  REQUIRE(mods[5].first == "4");
  REQUIRE(mods[5].second->type_name() == "Linear");

  Outer outer;
  REQUIRE(keys(outer.state_dict()) ==
          std::vector<std::string>{"w", "buf", "fc.weight", "fc.bias", "inner.weight", "inner.bias"});
  REQUIRE(keys(outer.named_parameters()) ==
          std::vector<std::string>{"w", "fc.weight", "fc.bias", "inner.weight", "inner.bias"});
}

TEST_CASE("state_dict keys of BasicBlock match PyTorch 1.13") {
  std::vector<std::string> common = {"conv1.weight",         "bn1.weight",   "bn1.bias",        "bn1.running_mean",
                                     "bn1.running_var",      "bn1.num_batches_tracked",         "conv2.weight",
                                     "bn2.weight",           "bn2.bias",     "bn2.running_mean", "bn2.running_var",
                                     "bn2.num_batches_tracked"};
  BasicBlock same(8, 8, 1);
  REQUIRE(keys(same.state_dict()) == common);
  BasicBlock a(4, 8, 2, ShortcutOption::A);
  REQUIRE(keys(a.state_dict()) == common);
  BasicBlock b(4, 8, 2, ShortcutOption::B);
  std::vector<std::string> with_b = common;
  for (const char* k : {"shortcut.0.weight", "shortcut.1.weight", "shortcut.1.bias", "shortcut.1.running_mean",
                        "shortcut.1.running_var", "shortcut.1.num_batches_tracked"})
    with_b.push_back(k);
  REQUIRE(keys(b.state_dict()) == with_b);
  REQUIRE(b.parameter("conv1.weight").defined() == false);  // parameter() is this module's own only
  REQUIRE(b.conv1->weight().shape() == Shape{8, 4, 3, 3});
  REQUIRE(std::static_pointer_cast<Sequential>(b.shortcut)->size() == 2);
}

TEST_CASE("load_state_dict copies in place and keeps tensor identity") {
  auto src = small_net();
  Generator g(99);
  auto dst = std::make_shared<Sequential>();
  dst->push_back(std::make_shared<Conv2d>(3, 4, std::array<int64_t, 2>{3, 3}, Conv2dOptions{}, true, g));
  dst->push_back(std::make_shared<BatchNorm2d>(4));
  dst->push_back(std::make_shared<ReLU>());
  dst->push_back(std::make_shared<Flatten>());
  dst->push_back(std::make_shared<Linear>(4 * 6 * 6, 5, true, g));
  src->state_dict()[3].second.fill_(0.25);                 // 1.bias
  src->state_dict()[6].second.fill_(17);                   // 1.num_batches_tracked
  NamedTensors before = dst->state_dict();
  LoadReport r = dst->load_state_dict(src->state_dict());
  REQUIRE(r.ok());
  NamedTensors after = dst->state_dict();
  NamedTensors want = src->state_dict();
  for (size_t i = 0; i < after.size(); ++i) {
    REQUIRE(after[i].second.is_same(before[i].second));
    REQUIRE(after[i].second.to_vector<double>() == want[i].second.to_vector<double>());
    REQUIRE_FALSE(after[i].second.raw_data() == want[i].second.raw_data());
  }
  REQUIRE(after[6].second.item() == 17);
  REQUIRE(after[0].second.requires_grad());
}

TEST_CASE("load_state_dict reports missing, unexpected and mismatched keys") {
  auto net = small_net();
  NamedTensors entries = net->state_dict();
  NamedTensors orig;
  for (auto& [n, t] : entries) orig.emplace_back(n, t.detach().clone());
  NamedTensors edited;
  for (auto& [n, t] : entries) {
    if (n == "0.bias") continue;                                           // missing
    if (n == "4.weight") edited.emplace_back(n, Tensor::zeros({5, 10}));  // mismatch
    else edited.emplace_back(n, Tensor::full(t.shape(), 3.0, t.dtype()));
  }
  edited.emplace_back("extra.weight", Tensor::zeros({2}));  // unexpected

  try {
    net->load_state_dict(edited, true);
    FAIL("strict load should throw");
  } catch (const Error& e) {
    std::string msg = e.what();
    REQUIRE(msg.find("0.bias") != std::string::npos);
    REQUIRE(msg.find("extra.weight") != std::string::npos);
    REQUIRE(msg.find("4.weight") != std::string::npos);
    REQUIRE(msg.find("[5, 144]") != std::string::npos);
  }
  // A failed strict load changes nothing.
  for (size_t i = 0; i < orig.size(); ++i)
    REQUIRE(net->state_dict()[i].second.to_vector<double>() == orig[i].second.to_vector<double>());

  LoadReport r = net->load_state_dict(edited, false);
  REQUIRE(r.missing == std::vector<std::string>{"0.bias"});
  REQUIRE(r.unexpected == std::vector<std::string>{"extra.weight"});
  REQUIRE(r.shape_mismatch.size() == 1);
  REQUIRE(r.shape_mismatch[0].name == "4.weight");
  REQUIRE(r.shape_mismatch[0].expected == Shape{5, 144});
  REQUIRE(r.shape_mismatch[0].got == Shape{5, 10});
  REQUIRE(net->state_dict()[0].second.at({0, 0, 0, 0}) == 3.0);             // loaded
  REQUIRE(net->state_dict()[6].second.item() == 3.0);                         // i64 buffer loaded
  REQUIRE(net->state_dict()[7].second.to_vector<double>() == orig[7].second.to_vector<double>());  // 4.weight kept
}

TEST_CASE("load_state_dict converts dtype") {
  BatchNorm1d bn(3);
  NamedTensors entries = bn.state_dict();
  entries[4].second = Tensor::full({}, 5.0, DType::f32);  // num_batches_tracked given as f32
  bn.load_state_dict(entries);
  REQUIRE(bn.num_batches_tracked().dtype() == DType::i64);
  REQUIRE(bn.num_batches_tracked().item() == 5);
}

TEST_CASE("train and eval switch recursively") {
  auto net = small_net();
  REQUIRE(net->is_training());
  net->eval();
  for (auto& [n, m] : net->named_modules()) REQUIRE_FALSE(m->is_training());
  net->train();
  for (auto& [n, m] : net->named_modules()) REQUIRE(m->is_training());
}

TEST_CASE("set_parameter replaces a parameter, also by dotted name") {
  auto net = small_net();
  Tensor w = Tensor::ones({5, 2, 72});
  net->set_parameter("4.weight", w);
  REQUIRE(net->state_dict()[7].second.is_same(w));
  REQUIRE(w.requires_grad());
  REQUIRE(std::static_pointer_cast<Linear>((*net)[4])->weight().shape() == Shape{5, 2, 72});
  REQUIRE_THROWS_AS(net->set_parameter("4.nothing", w), Error);
  REQUIRE_THROWS_AS(net->set_parameter("9.weight", w), Error);
}

TEST_CASE("registration rejects duplicate and dotted names, zero_grad clears gradients") {
  Module m;
  m.register_parameter("a", Tensor::ones({2}));
  REQUIRE_THROWS_AS(m.register_buffer("a", Tensor::ones({2})), Error);
  REQUIRE_THROWS_AS(m.register_module("x.y", std::make_shared<ReLU>()), Error);
  REQUIRE_THROWS_AS(m.forward(Tensor::ones({1})), Error);
  m.register_buffer("tmp", Tensor::ones({1}), false);
  REQUIRE(keys(m.state_dict()) == std::vector<std::string>{"a"});
  REQUIRE(keys(m.named_buffers()) == std::vector<std::string>{"tmp"});

  Linear lin(3, 2);
  Tensor y = lin.forward(Tensor::ones({4, 3}));
  sum(y).backward();
  REQUIRE(lin.weight().grad().defined());
  lin.zero_grad();
  REQUIRE_FALSE(lin.weight().grad().defined());
}
