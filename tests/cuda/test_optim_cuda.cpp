// Optimizers on CUDA parameters (core/cuda/optim.cu): a few SGD / Adam / AdamW steps and
// gradient clipping on both devices from the same start, compared element by element; state
// tensors on the parameter's device; state moving between devices through state_dict/load_state.
// All cases need a GPU ([gpu]).
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "core/cuda/runtime.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "cuda/need_gpu.h"
#include "layers/linear.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/sgd.h"

using namespace lowbit;

namespace {

// The updates use the CPU's double arithmetic (and its FMAs on an FMA build), so they agree to
// the last bit there; the tolerance leaves room for a CPU build without FMA.
constexpr double kTol = 1e-6;

void require_close(const Tensor& cpu, const Tensor& dev, const std::string& what, double tol = kTol) {
  INFO(what);
  REQUIRE(dev.device().is_cuda());
  REQUIRE(cpu.shape() == dev.shape());
  const auto a = cpu.to_vector<float>(), b = dev.to(Device::cpu()).to_vector<float>();
  int64_t exact = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i << ": cpu " << a[i] << ", cuda " << b[i]);
    REQUIRE(std::abs(a[i] - b[i]) <= tol * (1 + std::abs(a[i])));
    exact += a[i] == b[i];
  }
  if (exact != static_cast<int64_t>(a.size())) WARN(what << ": " << exact << " of " << a.size() << " bit-identical");
}

// The same parameters on the CPU and on cuda:0.
struct Twin {
  NamedTensors cpu, dev;
};

Twin make_params() {
  Generator gen(2024);
  Twin t;
  const std::vector<Shape> shapes = {{64, 33}, {33}, {5, 3, 3, 3}, {10007}};
  for (size_t k = 0; k < shapes.size(); ++k) {
    Tensor c = Tensor::randn(shapes[k], gen).detach();
    Tensor d = c.to(Device::cuda());
    c.set_requires_grad();
    d.set_requires_grad();
    t.cpu.emplace_back("p" + std::to_string(k), c);
    t.dev.emplace_back("p" + std::to_string(k), d);
  }
  return t;
}

// Same gradients on both (scale grows per step so clipping engages on later steps).
void set_grads(Twin& t, Generator& gen, double scale) {
  for (size_t k = 0; k < t.cpu.size(); ++k) {
    Tensor g = Tensor::randn(t.cpu[k].second.shape(), gen, 0, scale);
    t.cpu[k].second.set_grad(g);
    t.dev[k].second.set_grad(g.to(Device::cuda()));
  }
}

using MakeOpt = std::function<std::unique_ptr<Optimizer>(const NamedTensors&)>;

// Steps both optimizers `steps` times (clipping first when max_norm > 0) and compares
// parameters, norms and every state tensor.
void run_twin(const std::string& name, const MakeOpt& make, int steps = 4, double max_norm = 0) {
  INFO("optimizer " << name);
  Twin t = make_params();
  auto oc = make(t.cpu), od = make(t.dev);
  Generator gen(77);
  for (int s = 0; s < steps; ++s) {
    set_grads(t, gen, 0.5 + s);
    if (max_norm > 0) {
      const double nc = clip_grad_norm(*oc, max_norm), nd = clip_grad_norm(*od, max_norm);
      // Per-block sums are exact-order on both devices: the norms agree to the last bit.
      REQUIRE(nc == nd);
      for (size_t k = 0; k < t.cpu.size(); ++k)
        require_close(t.cpu[k].second.grad(), t.dev[k].second.grad(), name + ": clipped grad " + t.cpu[k].first, 0);
    }
    oc->step();
    od->step();
  }
  for (size_t k = 0; k < t.cpu.size(); ++k)
    require_close(t.cpu[k].second, t.dev[k].second, name + ": parameter " + t.cpu[k].first);
  const auto sc = oc->state_tensors(), sd = od->state_tensors();
  REQUIRE(sc.size() == sd.size());
  for (size_t i = 0; i < sc.size(); ++i) {
    REQUIRE(sc[i].first == sd[i].first);
    if (sc[i].second.dtype() == DType::i64) {  // Adam's step count
      REQUIRE(sc[i].second.to_vector<int64_t>() == sd[i].second.to(Device::cpu()).to_vector<int64_t>());
      continue;
    }
    require_close(sc[i].second, sd[i].second, name + ": state " + sc[i].first);
  }
}

}  // namespace

TEST_CASE("cuda SGD steps match the CPU", "[cuda][gpu][optim]") {
  LOWBIT_NEED_GPU();
  auto sgd = [](SgdOptions o) {
    return [o](const NamedTensors& p) { return std::unique_ptr<Optimizer>(new SGD(p, o)); };
  };
  SgdOptions o;
  o.lr = 0.1;
  run_twin("sgd plain", sgd(o));
  o.momentum = 0.9;
  o.weight_decay = 5e-4;
  run_twin("sgd momentum + weight decay", sgd(o));
  o.dampening = 0.2;
  run_twin("sgd dampening", sgd(o));
  o.dampening = 0;
  o.nesterov = true;
  run_twin("sgd nesterov", sgd(o));
  run_twin("sgd nesterov, clipped", sgd(o), 4, 5.0);
}

TEST_CASE("cuda Adam and AdamW steps match the CPU", "[cuda][gpu][optim]") {
  LOWBIT_NEED_GPU();
  AdamOptions a;
  a.lr = 1e-2;
  a.weight_decay = 1e-3;
  run_twin("adam", [a](const NamedTensors& p) { return std::unique_ptr<Optimizer>(new Adam(p, a)); });
  a.amsgrad = true;
  run_twin(
      "adam amsgrad, clipped", [a](const NamedTensors& p) { return std::unique_ptr<Optimizer>(new Adam(p, a)); }, 5,
      20.0);
  AdamWOptions w;
  w.lr = 1e-2;
  run_twin("adamw", [w](const NamedTensors& p) { return std::unique_ptr<Optimizer>(new AdamW(p, w)); });
}

TEST_CASE("cuda optimizer state lives on the parameter's device and moves through state_dict", "[cuda][gpu][optim]") {
  LOWBIT_NEED_GPU();
  Twin t = make_params();
  AdamOptions a;
  a.lr = 1e-2;
  Adam od(t.dev, a);
  Generator gen(3);
  set_grads(t, gen, 1.0);
  od.step();
  const ParamState* st = od.state("p0");
  REQUIRE(st != nullptr);
  for (const auto& [name, buf] : st->buffers) {
    INFO(name);
    REQUIRE(buf.device() == Device::cuda());
  }
  // CUDA state into a CPU optimizer (entries are moved to the parameter's device), and back.
  Adam oc(t.cpu, a);
  OptimizerState s = od.state_dict();
  for (auto& [k, v] : s.tensors) v = v.to(Device::cpu());  // what a checkpoint writer does
  oc.load_state(s);
  REQUIRE(oc.state("p0")->buffers.at("exp_avg").device() == Device::cpu());
  Adam od2(t.dev, a);
  od2.load_state(oc.state_dict());
  REQUIRE(od2.state("p0")->buffers.at("exp_avg").device() == Device::cuda());
  REQUIRE(od2.state("p0")->step == 1);
  require_close(oc.state("p3")->buffers.at("exp_avg_sq"), od2.state("p3")->buffers.at("exp_avg_sq"), "reloaded state",
                0);
}

TEST_CASE("cuda optimizer state follows a parameter that Module::to moved", "[cuda][gpu][optim]") {
  LOWBIT_NEED_GPU();
  Generator init(1);
  Linear a(6, 4, true, init);
  Generator init2(1);
  Linear b(6, 4, true, init2);  // the same values: stays on the CPU as the reference
  SgdOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  SGD oa(a.named_parameters(), o), ob(b.named_parameters(), o);
  Generator gen(8);
  for (int step = 0; step < 3; ++step) {
    if (step == 1) a.to(Device::cuda());  // after one step: the momentum buffers are on the CPU
    for (Linear* m : {&a, &b}) {
      Generator gx(100 + step);
      const Tensor x = Tensor::randn({5, 6}, gx).to(m->weight().device());
      const Tensor y = m->forward(x);
      sum(mul(y, y)).backward();
    }
    oa.step();
    ob.step();
    oa.zero_grad();
    ob.zero_grad();
  }
  REQUIRE(oa.state("weight")->buffers.at("momentum_buffer").device() == Device::cuda());
  // The forward and backward ran on cuBLAS for two steps: close, not bit-identical.
  require_close(b.weight(), a.weight(), "weight after moving mid-run", 1e-5);
  require_close(b.bias(), a.bias(), "bias after moving mid-run", 1e-5);
}

TEST_CASE("cuda optimizer step rejects a gradient on another device", "[cuda][gpu][optim]") {
  LOWBIT_NEED_GPU();
  Tensor p = Tensor::ones({3}).to(Device::cuda());
  p.set_requires_grad();
  p.set_grad(Tensor::ones({3}));  // on the CPU
  SGD opt({{"w", p}}, SgdOptions{});
  try {
    opt.step();
    FAIL("a CPU gradient of a CUDA parameter was accepted");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("'w'") != std::string::npos);
  }
}
