// The quantizers on CUDA (quant/cuda/) against the CPU: every method's training forward and
// backward (x, alpha, sigma, gates) on the same random inputs and the same generator draws,
// per tensor and per channel; DropBits masks and the grid helpers bit for bit; and a quantized
// LeNet-5 (CPQ + DropBits 2/2) trained 5 steps on both devices. All [gpu]: skipped where no GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/cuda/runtime.h"
#include "core/ops/elementwise.h"
#include "core/ops/loss.h"
#include "core/ops/reduce.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "cuda/need_gpu.h"
#include "layers/zoo.h"
#include "optim/sgd.h"
#include "quant/dropbits.h"
#include "quant/quantize_model.h"
#include "quant/registry.h"
#include "train/step_bench.h"

using namespace lowbit;

namespace {

const Device kDev = Device::cuda(0);

// |a - b| <= rtol |a| + atol max|a| for all but max_bad_fraction of the elements (NaN equal NaN).
// Returns the number of violations and describes the worst one in `where`.
int64_t mismatches(const Tensor& cpu, const Tensor& cuda, double rtol, double atol, std::string& where) {
  REQUIRE(cuda.device() == kDev);
  REQUIRE(cpu.shape() == cuda.shape());
  const auto a = cpu.to_vector<double>(), b = cuda.to(Device::cpu()).to_vector<double>();
  double scale = 0;
  for (double v : a)
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  int64_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    const double excess = std::fabs(a[i] - b[i]) - (rtol * std::fabs(a[i]) + atol * scale);
    if (!(excess <= 0)) {
      ++bad;
      if (!(excess <= worst)) {
        worst = std::isnan(excess) ? INFINITY : excess;
        std::ostringstream os;
        os << "element " << i << ": cpu " << a[i] << " cuda " << b[i] << " (" << bad << " bad of " << a.size() << ")";
        where = os.str();
      }
    }
  }
  return bad;
}

struct Tol {
  double fwd_rtol = 0, fwd_atol = 0;  // 0, 0: bit for bit
  double fwd_bad = 0;                 // fraction of forward elements allowed to differ (RQ-ST near-ties)
  double grad_rtol = 1e-3, grad_atol = 1e-4;
};

QuantSpec spec_of(const std::string& method, int bits, bool per_channel, const Shape& shape) {
  QuantSpec s;
  s.method = method;
  s.bits = bits;
  s.role = QuantRole::weight;
  s.per_channel = per_channel;
  s.shape = shape;
  return s;
}

// One quantizer, initialised on the CPU from the same tensor on both devices, one training
// forward and backward (upstream gradient random), then one eval forward.
void run_quantizer(const std::string& label, const QuantSpec& spec, const Shape& shape, const Tol& tol) {
  INFO(label);
  Generator g(7);
  const Tensor w = Tensor::randn(shape, g);
  QuantizerPtr qc = make_quantizer(spec), qd = make_quantizer(spec);
  qc->initialize(w);
  qd->initialize(w);
  qd->to(kDev);
  qc->train();
  qd->train();
  qc->set_generator(Generator(5, 3));
  qd->set_generator(Generator(5, 3));
  // x around the grid and beyond it: the tails, the clamp and the underflow branches all run.
  const Tensor x = mul(Tensor::randn(shape, g), 1.5);
  Tensor xc = x.clone().detach().set_requires_grad(true);
  Tensor xd = x.to(kDev).set_requires_grad(true);
  const Tensor yc = qc->forward(xc), yd = qd->forward(xd);
  std::string where;
  const int64_t bad = mismatches(yc.detach(), yd.detach(), tol.fwd_rtol, tol.fwd_atol, where);
  INFO("forward " << where);
  CHECK(static_cast<double>(bad) <= tol.fwd_bad * static_cast<double>(x.numel()));
  const Tensor up = Tensor::randn(shape, g);
  sum(mul(yc, up)).backward();
  sum(mul(yd, up.to(kDev))).backward();
  REQUIRE(xc.grad().defined() == xd.grad().defined());
  if (xc.grad().defined()) {
    where.clear();
    const int64_t gbad = mismatches(xc.grad(), xd.grad(), tol.grad_rtol, tol.grad_atol, where);
    INFO("dx " << where);
    CHECK(static_cast<double>(gbad) <= tol.fwd_bad * static_cast<double>(x.numel()));
  }
  const NamedTensors pc = qc->named_parameters(), pd = qd->named_parameters();
  REQUIRE(pc.size() == pd.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    INFO("parameter " << pc[i].first);
    REQUIRE(pd[i].second.device() == kDev);
    REQUIRE(pc[i].second.grad().defined() == pd[i].second.grad().defined());
    if (!pc[i].second.grad().defined()) continue;
    where.clear();
    const int64_t pbad = mismatches(pc[i].second.grad(), pd[i].second.grad(), tol.grad_rtol, tol.grad_atol, where);
    INFO(where);
    CHECK(pbad == 0);
  }
  // eval: deterministic on both, the same values (the grid helpers, or CPQ's mode)
  qc->eval();
  qd->eval();
  NoGradGuard ng;
  where.clear();
  const int64_t ebad = mismatches(qc->forward(x), qd->forward(x.to(kDev)), 0, 0, where);
  INFO("eval " << where);
  CHECK(ebad == 0);
}

// Per tensor on a conv-shaped weight and per channel (dim 0) on the same shape.
void run_both_granularities(const std::string& label, QuantSpec spec, const Tol& tol) {
  const Shape shape{8, 3, 5, 7};  // 840 elements: short last blocks in every kernel
  spec.shape = shape;
  spec.per_channel = false;
  run_quantizer(label + " per tensor", spec, shape, tol);
  spec.per_channel = true;
  run_quantizer(label + " per channel", spec, shape, tol);
}

}  // namespace

TEST_CASE("quant cuda: ste_uniform and lsq forward/backward equal the CPU", "[cuda][gpu][quant]") {
  LOWBIT_NEED_GPU();
  Tol exact;  // forward bit for bit; the STE masks too
  exact.grad_rtol = 0;
  exact.grad_atol = 0;
  for (int bits : {2, 4, 8}) {
    run_both_granularities("ste_uniform " + std::to_string(bits), spec_of("ste_uniform", bits, false, {}), exact);
    Tol lsq;  // dx is exact, dalpha is a double sum in another order
    lsq.grad_rtol = 1e-6;
    lsq.grad_atol = 1e-9;
    run_both_granularities("lsq " + std::to_string(bits), spec_of("lsq", bits, false, {}), lsq);
  }
  // a big per-tensor lsq: several reduction blocks (4096) and a partial one
  Tol lsq;
  lsq.grad_rtol = 1e-6;
  lsq.grad_atol = 1e-9;
  run_quantizer("lsq 4 big", spec_of("lsq", 4, false, {3, 5000}), {3, 5000}, lsq);
  run_quantizer("lsq 4 big per channel", spec_of("lsq", 4, true, {3, 5000}), {3, 5000}, lsq);
}

TEST_CASE("quant cuda: rq and rq-ST forward/backward match the CPU (same Gumbel draws)", "[cuda][gpu][quant]") {
  LOWBIT_NEED_GPU();
  for (bool st : {true, false})
    for (int bits : {2, 3, 4, 6}) {  // 6 bits: the local window
      QuantSpec s = spec_of("rq", bits, false, {});
      s.options["straight_through"] = st ? "true" : "false";
      Tol t;
      t.fwd_rtol = st ? 0 : 1e-4;
      t.fwd_atol = st ? 0 : 1e-5;
      t.fwd_bad = 2e-3;  // log/exp differ in the last bit: a hard sample may flip on a near-tie
      // The alpha/sigma sums cancel heavily (terms of both signs, up to 1/(s sigma)): the host
      // emulation of the kernels differed from the CPU by up to 3e-3 relative there.
      t.grad_rtol = 5e-3;
      t.grad_atol = 1e-3;
      run_both_granularities(std::string(st ? "rq-st " : "rq ") + std::to_string(bits), s, t);
    }
}

TEST_CASE("quant cuda: cpq forward/backward at 2/3/4/8 bits, both grids", "[cuda][gpu][quant]") {
  LOWBIT_NEED_GPU();
  // Forward bit for bit; gradients to float rounding (the CPU skips masses past 20 sigmas).
  // The 8-bit cases (and learned bits with max_bits 6 below) also reach the CPU's per-element
  // window path (lane_sums_local), against the CUDA kernel's walk over the whole grid.
  Tol t;
  t.grad_rtol = 5e-3;
  t.grad_atol = 1e-3;
  for (GridKind grid : {GridKind::rq, GridKind::symmetric})
    for (int bits : {2, 3, 4, 8}) {
      QuantSpec s = spec_of("cpq", bits, false, {});
      s.grid = grid;
      run_both_granularities("cpq " + std::to_string(bits) + (grid == GridKind::rq ? " rq" : " symmetric"), s, t);
    }
  QuantSpec s = spec_of("cpq", 3, false, {});
  s.options["alpha_direct_grad"] = "false";
  s.options["positive"] = "softplus";
  run_both_granularities("cpq 3 softplus, no direct alpha term", s, t);
}

TEST_CASE("quant cuda: cpq + DropBits per element / per tensor, both modes and grids", "[cuda][gpu][quant]") {
  LOWBIT_NEED_GPU();
  Tol t;
  t.grad_rtol = 5e-3;
  t.grad_atol = 1e-3;
  using G = DropBitsSpec::Granularity;
  using M = DropBitsSpec::Mode;
  for (G gran : {G::per_element, G::per_tensor})
    for (M mode : {M::resolution, M::range})
      for (GridKind grid : {GridKind::rq, GridKind::symmetric})
        for (int bits : {2, 3, 4}) {
          if (grid == GridKind::symmetric && bits < 2) continue;
          QuantSpec s = spec_of("cpq", bits, false, {});
          s.grid = grid;
          s.dropbits.enabled = true;
          s.dropbits.p = 0.5;
          s.dropbits.granularity = gran;
          s.dropbits.mode = mode;
          s.dropbits.protect_ends = bits != 3;  // both settings
          std::ostringstream label;
          label << "cpq+dropbits " << bits << (gran == G::per_element ? " per_element" : " per_tensor")
                << (mode == M::resolution ? " resolution" : " range") << (grid == GridKind::rq ? " rq" : " symmetric");
          run_both_granularities(label.str(), s, t);
        }
}

TEST_CASE("quant cuda: cpq with learned bit gates (and DropBits) matches the CPU", "[cuda][gpu][quant]") {
  LOWBIT_NEED_GPU();
  Tol t;
  t.grad_rtol = 5e-3;
  t.grad_atol = 1e-3;
  for (int max_bits : {3, 4, 6})
    for (bool drop : {false, true}) {
      QuantSpec s = spec_of("cpq", max_bits, false, {});
      s.learn_bits.enabled = true;
      s.learn_bits.max_bits = max_bits;
      s.learn_bits.init = 1.0;  // gates partly open: their gradients are not all zero
      s.dropbits.enabled = drop;
      run_both_granularities("cpq learned bits " + std::to_string(max_bits) + (drop ? " + dropbits" : ""), s, t);
    }
}

TEST_CASE("quant cuda: DropBits masks, grid codes and abs-max equal the CPU bit for bit", "[cuda][gpu][quant]") {
  LOWBIT_NEED_GPU();
  DropBitsSpec d;
  d.enabled = true;
  d.p = 0.4;
  for (int bits : {2, 4, 8}) {
    DropBitsSampler s(d, bits, true, GridKind::rq);
    Generator gc(9, 2), gd(9, 2);
    gc.reserve(13);
    gd.reserve(13);
    const Tensor mc = s.sample_elements(gc, {70001}, Device::cpu());
    const Tensor md = s.sample_elements(gd, {70001}, kDev);
    REQUIRE(md.device() == kDev);
    CHECK(mc.to_vector<int>() == md.to_vector<int>());
    CHECK(gc.reserve(0) == gd.reserve(0));  // the same counters consumed
  }
  Generator g(4);
  const Tensor x = mul(Tensor::randn({6, 1000}, g), 3.0);
  const Tensor alpha = Tensor::from_vector<float>({0.3f, 0.5f, 0.25f, 1.0f, 0.7f, 0.1f}, {6});
  for (const GridRange r : {GridRange{-2, 1}, GridRange{0, 15}, GridRange{-128, 127}}) {
    CHECK(grid_codes(x, alpha, r).to_vector<int>() == grid_codes(x.to(kDev), alpha, r).to_vector<int>());
    const Tensor yd = grid_quantize(x.to(kDev), alpha.to(kDev), r);
    CHECK(yd.device() == kDev);
    CHECK(grid_quantize(x, alpha, r).to_vector<float>() == yd.to_vector<float>());
  }
  CHECK(abs_max(x, 6) == abs_max(x.to(kDev), 6));
  CHECK(abs_max(x, 1) == abs_max(x.to(kDev), 1));
}

namespace {
// 5 SGD steps of a quantized LeNet-5 (batch norm, CPQ + DropBits 2/2) on `device` from the same
// weights, batches and quantizer draws; the losses.
std::vector<double> quantized_lenet_losses(Device device) {
  cuda::set_deterministic(true);
  cuda::set_allow_tf32(false);
  Generator init(11), data(12);
  ModelOptions mo;
  mo.num_classes = 10;
  mo.batch_norm = true;
  ModulePtr model = build_model("lenet5", mo, init);
  quantize_model(*model, R"(
method: cpq
weight_bits: 2
act_bits: 2
overrides:
  - {match: "0", act_bits: 8}
dropbits: {enabled: true, p: 0.3, granularity: per_element, protect_ends: true, mode: resolution}
)");
  model->train();
  model->to(device);
  SgdOptions so;
  so.lr = 0.02;
  so.momentum = 0.9;
  SGD opt(model->named_parameters(), so);
  Shape xs{32};
  for (int64_t d : bench_input_shape("lenet5")) xs.push_back(d);
  std::vector<double> losses;
  for (int s = 0; s < 5; ++s) {
    Tensor x = Tensor::randn(xs, data).to(device);
    Tensor y = Tensor::randint(0, 10, {32}, data).to(device);
    opt.zero_grad();
    Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  return losses;
}
}  // namespace

TEST_CASE("quant cuda: quantized LeNet-5 (CPQ + DropBits 2/2) loss equal on CPU and CUDA over 5 steps",
          "[cuda][gpu][quant][train]") {
  LOWBIT_NEED_GPU();
  const std::vector<double> cpu = quantized_lenet_losses(Device::cpu());
  const std::vector<double> gpu = quantized_lenet_losses(kDev);
  REQUIRE(cpu.size() == gpu.size());
  for (size_t s = 0; s < cpu.size(); ++s) {
    INFO("step " << s << ": cpu " << cpu[s] << ", cuda " << gpu[s]);
    REQUIRE(std::isfinite(gpu[s]));
    CHECK(std::abs(cpu[s] - gpu[s]) <= 1e-4 * std::max(1.0, std::abs(cpu[s])));
  }
}
