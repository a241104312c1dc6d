// CPU-vs-CUDA cases for convolution (cuDNN), pooling and batch norm, forward and backward,
// plus the conv algorithm cache, deterministic mode and TF32 switch. Tolerances: conv 1e-4
// relative (TF32 off), pooling exact, batch norm 1e-5. All but the settings test need a GPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "backend_harness.h"
#include "core/cuda/cudnn_util.h"
#include "core/cuda/runtime.h"
#include "core/ops/batch_norm.h"
#include "core/ops/conv.h"
#include "core/ops/elementwise.h"
#include "core/ops/pool.h"
#include "core/ops/reduce.h"

using namespace lowbit;
using namespace backend_harness;

namespace {

Conv2dOptions conv_opt(std::array<int64_t, 2> stride, std::array<int64_t, 2> pad, int64_t groups = 1,
                       std::array<int64_t, 2> dil = {1, 1}) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.groups = groups;
  o.dilation = dil;
  return o;
}

OpCase conv_case(std::string name, Shape x, Shape w, bool bias, Conv2dOptions opt) {
  std::vector<Shape> shapes{x, w};
  if (bias) shapes.push_back({w[0]});
  return {std::move(name), shapes,
          [opt](const Inputs& in) { return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), opt); }, 1e-4};
}

std::vector<OpCase> conv_cases() {
  return {
      conv_case("conv 3x3 pad 1", {2, 3, 8, 8}, {4, 3, 3, 3}, true, conv_opt({1, 1}, {1, 1})),
      conv_case("conv 3x3 stride 2 pad 1", {2, 4, 9, 9}, {6, 4, 3, 3}, true, conv_opt({2, 2}, {1, 1})),
      conv_case("conv 1x1 no bias", {2, 8, 5, 5}, {16, 8, 1, 1}, false, conv_opt({1, 1}, {0, 0})),
      conv_case("conv 1x1 stride 2 (downsample)", {2, 8, 6, 6}, {12, 8, 1, 1}, false, conv_opt({2, 2}, {0, 0})),
      conv_case("conv groups 2", {2, 4, 7, 7}, {6, 2, 3, 3}, true, conv_opt({1, 1}, {1, 1}, 2)),
      conv_case("conv depthwise", {2, 8, 10, 10}, {8, 1, 3, 3}, true, conv_opt({1, 1}, {1, 1}, 8)),
      conv_case("conv depthwise stride 2", {2, 8, 9, 9}, {8, 1, 3, 3}, false, conv_opt({2, 2}, {1, 1}, 8)),
      conv_case("conv depthwise multiplier 2", {1, 4, 6, 6}, {8, 1, 3, 3}, true, conv_opt({1, 1}, {1, 1}, 4)),
      conv_case("conv non-square", {2, 3, 7, 11}, {5, 3, 3, 5}, true, conv_opt({1, 2}, {1, 2})),
      conv_case("conv dilation 2", {1, 3, 10, 10}, {4, 3, 3, 3}, true, conv_opt({1, 1}, {2, 2}, 1, {2, 2})),
      conv_case("conv 5x5 stride 2 no pad", {3, 6, 13, 13}, {8, 6, 5, 5}, true, conv_opt({2, 2}, {0, 0})),
      conv_case("conv wide (ResNet block)", {4, 32, 16, 16}, {64, 32, 3, 3}, true, conv_opt({2, 2}, {1, 1})),
  };
}

OpCase pool_case(std::string name, Shape x, std::function<Tensor(const Tensor&)> f, Domain d = Domain::any) {
  return {std::move(name), {x}, [f](const Inputs& in) { return f(in[0]); }, 0, d};
}

Pool2dOptions pool_opt(std::array<int64_t, 2> k, std::array<int64_t, 2> s, std::array<int64_t, 2> p,
                       bool ceil_mode = false, bool include_pad = true, std::array<int64_t, 2> dil = {1, 1}) {
  Pool2dOptions o;
  o.kernel = k;
  o.stride = s;
  o.padding = p;
  o.ceil_mode = ceil_mode;
  o.count_include_pad = include_pad;
  o.dilation = dil;
  return o;
}

std::vector<OpCase> pool_cases() {
  auto maxp = [](Pool2dOptions o) { return [o](const Tensor& x) { return max_pool2d(x, o); }; };
  auto avgp = [](Pool2dOptions o) { return [o](const Tensor& x) { return avg_pool2d(x, o); }; };
  auto adapt = [](int64_t h, int64_t w) { return [h, w](const Tensor& x) { return adaptive_avg_pool2d(x, h, w); }; };
  return {
      pool_case("max 2x2", {2, 3, 8, 8}, maxp(pool_opt({2, 2}, {2, 2}, {0, 0}))),
      pool_case("max 2x2 odd input", {2, 3, 7, 9}, maxp(pool_opt({2, 2}, {2, 2}, {0, 0}))),
      pool_case("max 3x3 stride 2 pad 1", {2, 3, 9, 9}, maxp(pool_opt({3, 3}, {2, 2}, {1, 1}))),
      pool_case("max 3x3 stride 2 ceil", {1, 2, 8, 8}, maxp(pool_opt({3, 3}, {2, 2}, {0, 0}, true))),
      pool_case("max 3x3 stride 1 (overlapping)", {1, 2, 6, 6}, maxp(pool_opt({3, 3}, {1, 1}, {1, 1}))),
      pool_case("max dilation 2", {1, 2, 9, 9}, maxp(pool_opt({3, 3}, {1, 1}, {0, 0}, false, true, {2, 2}))),
      pool_case("max non-square", {2, 2, 7, 6}, maxp(pool_opt({2, 3}, {2, 1}, {1, 1}))),
      pool_case("max ties", {2, 3, 8, 8}, maxp(pool_opt({3, 3}, {1, 1}, {1, 1})), Domain::ties),
      pool_case("max 2x2 ties", {2, 3, 8, 8}, maxp(pool_opt({2, 2}, {2, 2}, {0, 0})), Domain::ties),
      pool_case("avg 2x2", {2, 3, 8, 8}, avgp(pool_opt({2, 2}, {2, 2}, {0, 0}))),
      pool_case("avg 3x3 pad 1 include pad", {2, 3, 7, 7}, avgp(pool_opt({3, 3}, {1, 1}, {1, 1}))),
      pool_case("avg 3x3 pad 1 exclude pad", {2, 3, 7, 7}, avgp(pool_opt({3, 3}, {1, 1}, {1, 1}, false, false))),
      pool_case("avg 3x3 stride 2 ceil include pad", {1, 2, 8, 8}, avgp(pool_opt({3, 3}, {2, 2}, {1, 1}, true))),
      pool_case("avg 3x3 stride 2 ceil exclude pad", {1, 2, 8, 8},
                avgp(pool_opt({3, 3}, {2, 2}, {1, 1}, true, false))),
      pool_case("avg non-square", {2, 2, 9, 6}, avgp(pool_opt({3, 2}, {2, 1}, {1, 0}))),
      pool_case("adaptive 7x9 -> 3x4", {2, 3, 7, 9}, adapt(3, 4)),
      pool_case("adaptive 5x5 -> 7x8 (upsampling bins)", {2, 2, 5, 5}, adapt(7, 8)),
      pool_case("adaptive 6x6 -> 6x6", {1, 2, 6, 6}, adapt(6, 6)),
      pool_case("global avg", {2, 4, 6, 6}, [](const Tensor& x) { return global_avg_pool2d(x); }),
  };
}

// Eval-mode running statistics on the input's device (fixed values, positive variances).
Tensor running(const Tensor& like, std::vector<float> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::from_vector<float>(v, {n}).to(like.device());
}

std::vector<OpCase> bn_cases() {
  BatchNormOptions train;
  train.training = true;
  BatchNormOptions eval;
  return {
      {"bn train 4-D", {{4, 3, 5, 5}, {3}, {3}},
       [train](const Inputs& x) { return batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), train); }},
      {"bn train 2-D", {{16, 6}, {6}, {6}},
       [train](const Inputs& x) { return batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), train); }},
      {"bn train no affine", {{4, 3, 5, 5}},
       [train](const Inputs& x) { return batch_norm(x[0], Tensor(), Tensor(), Tensor(), Tensor(), train); }},
      {"bn train large mean", {{4, 3, 6, 6}, {3}, {3}},
       [train](const Inputs& x) {
         return batch_norm(add(x[0], 100.0), x[1], x[2], Tensor(), Tensor(), train);
       }},
      {"bn train many chunks", {{64, 4, 24, 24}, {4}, {4}},
       [train](const Inputs& x) { return batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), train); }},
      {"bn+relu train", {{4, 3, 5, 5}, {3}, {3}},
       [train](const Inputs& x) { return batch_norm_relu(x[0], x[1], x[2], Tensor(), Tensor(), train); }},
      {"bn+relu train many chunks", {{16, 8, 32, 32}, {8}, {8}},
       [train](const Inputs& x) { return batch_norm_relu(x[0], x[1], x[2], Tensor(), Tensor(), train); }},
      {"bn eval", {{4, 3, 5, 5}, {3}, {3}},
       [eval](const Inputs& x) {
         return batch_norm(x[0], x[1], x[2], running(x[0], {0.1f, -0.2f, 0.3f}), running(x[0], {0.5f, 1.0f, 2.0f}),
                           eval);
       }},
      {"bn+relu eval", {{4, 3, 5, 5}, {3}, {3}},
       [eval](const Inputs& x) {
         return batch_norm_relu(x[0], x[1], x[2], running(x[0], {0.1f, -0.2f, 0.3f}),
                                running(x[0], {0.5f, 1.0f, 2.0f}), eval);
       }},
  };
}

bool gpu_or_warn() {
  if (cuda::is_available()) return true;
  WARN("no CUDA device: test body not executed");
  return false;
}

// Forward and all three gradients of one conv on `dev`, for repeat and algorithm checks.
std::vector<Tensor> conv_step(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt,
                              const Tensor& dy) {
  Tensor xi = x.detach().set_requires_grad(true), wi = w.detach().set_requires_grad(true),
         bi = b.detach().set_requires_grad(true);
  Tensor y = conv2d(xi, wi, bi, opt);
  sum(mul(y, dy)).backward();
  return {y.detach(), xi.grad(), wi.grad(), bi.grad()};
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const auto va = a.to(Device::cpu()).to_vector<float>(), vb = b.to(Device::cpu()).to_vector<float>();
  return va.size() == vb.size() && std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

// Restores the global CUDA settings a test changes, even when a check throws.
struct SettingsGuard {
  bool det = cuda::deterministic(), tf32 = cuda::allow_tf32();
  ~SettingsGuard() {
    cuda::set_deterministic(det);
    cuda::set_allow_tf32(tf32);
  }
};

}  // namespace

TEST_CASE("cuda deterministic mode is on by default and can be switched", "[cuda]") {
  SettingsGuard keep;
  CHECK(cuda::deterministic());
  cuda::set_deterministic(false);
  CHECK_FALSE(cuda::deterministic());
  cuda::set_deterministic(true);
  CHECK(cuda::deterministic());
}

TEST_CASE("cuda conv2d (cuDNN) matches the CPU forward and backward", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  SettingsGuard keep;
  cuda::set_allow_tf32(false);
  for (bool det : {true, false}) {
    cuda::set_deterministic(det);
    for (const OpCase& oc : conv_cases())
      SECTION(oc.name + (det ? " (deterministic)" : " (fastest)")) { run_case(oc, Device::cuda(0)); }
  }
}

TEST_CASE("cuda pooling matches the CPU exactly", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  for (const OpCase& oc : pool_cases())
    SECTION(oc.name) { run_case(oc, Device::cuda(0)); }
}

TEST_CASE("cuda max pooling routes NaN and -inf windows as the CPU does", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // One 4x4 plane: an all -inf window, a window with a NaN after its max, a window of ties.
  Tensor x = Tensor::from_vector<float>({-inf, -inf, 1, 3,   //
                                         -inf, -inf, nan, 2,  //
                                         5, 5, 0, 0,          //
                                         5, 5, 0, 0},
                                        {1, 1, 4, 4});
  const Pool2dOptions o = Pool2dOptions::square(2, 2);
  Tensor xc = x.clone().set_requires_grad(true), xd = x.to(Device::cuda(0)).set_requires_grad(true);
  Tensor yc = max_pool2d(xc, o), yd = max_pool2d(xd, o);
  double worst = 0;
  std::string where = compare(yc.detach(), yd.detach(), 0, worst);
  INFO("forward " << where);
  CHECK(worst <= 0);
  Tensor dy = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  yc.backward(dy);
  yd.backward(dy.to(Device::cuda(0)));
  where = compare(xc.grad(), xd.grad(), 0, worst);
  INFO("gradient " << where);
  CHECK(worst <= 0);
}

TEST_CASE("cuda batch norm matches the CPU forward and backward", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  for (const OpCase& oc : bn_cases())
    SECTION(oc.name) { run_case(oc, Device::cuda(0)); }
}

TEST_CASE("cuda batch norm updates the running statistics as the CPU does", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  Generator gen(7);
  Tensor x = Tensor::randn({8, 5, 4, 4}, gen, 0.5, 2.0);
  Tensor rm_c = Tensor::randn({5}, gen), rv_c = add(abs(Tensor::randn({5}, gen)), 0.5);
  Tensor rm_d = rm_c.to(Device::cuda(0)), rv_d = rv_c.to(Device::cuda(0));
  BatchNormOptions o;
  o.training = true;
  o.momentum = 0.3;
  for (int step = 0; step < 3; ++step) {
    (void)batch_norm(x, Tensor(), Tensor(), rm_c, rv_c, o);
    (void)batch_norm(x.to(Device::cuda(0)), Tensor(), Tensor(), rm_d, rv_d, o);
  }
  double worst = 0;
  std::string where = compare(rm_c, rm_d, 1e-5, worst);
  INFO("running_mean " << where);
  CHECK(worst <= 0);
  where = compare(rv_c, rv_d, 1e-5, worst);
  INFO("running_var " << where);
  CHECK(worst <= 0);
}

TEST_CASE("cuda conv2d chooses algorithms once per shape and repeats bit for bit", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  SettingsGuard keep;
  cuda::set_allow_tf32(false);
  cuda::set_deterministic(true);
  const Device dev = Device::cuda(0);
  Generator gen(3);
  const Conv2dOptions opt = conv_opt({1, 1}, {1, 1});
  // A shape no other test uses, so the first call here is the first choice for it.
  Tensor x = Tensor::randn({6, 24, 14, 14}, gen).to(dev), w = Tensor::randn({40, 24, 3, 3}, gen).to(dev);
  Tensor b = Tensor::randn({40}, gen).to(dev), dy = Tensor::randn({6, 40, 14, 14}, gen).to(dev);
  const uint64_t before = cuda::conv_algorithm_choices();
  const std::vector<Tensor> first = conv_step(x, w, b, opt, dy);
  CHECK(cuda::conv_algorithm_choices() == before + 3);  // forward, data and weight gradients
  const std::vector<Tensor> second = conv_step(x, w, b, opt, dy);
  CHECK(cuda::conv_algorithm_choices() == before + 3);  // cached
  for (size_t i = 0; i < first.size(); ++i) {
    INFO("output " << i << " of forward, dx, dw, db");
    CHECK(bitwise_equal(first[i], second[i]));
  }
  // Another setting is another choice; timed (fastest) algorithms still match within 1e-4.
  cuda::set_deterministic(false);
  const std::vector<Tensor> fast = conv_step(x, w, b, opt, dy);
  CHECK(cuda::conv_algorithm_choices() == before + 6);
  for (size_t i = 0; i < first.size(); ++i) {
    double worst = 0;
    const std::string where = compare(first[i].to(Device::cpu()), fast[i], 1e-4, worst);
    INFO("output " << i << " " << where);
    CHECK(worst <= 0);
  }
}

TEST_CASE("cuda conv2d with TF32 allowed stays close to the CPU", "[cuda][gpu]") {
  if (!gpu_or_warn()) return;
  SettingsGuard keep;
  cuda::set_allow_tf32(true);
  // TF32 keeps 10 mantissa bits in the products: about 1e-3 relative on sums of 288 terms.
  OpCase oc = conv_case("conv tf32", {2, 32, 12, 12}, {48, 32, 3, 3}, true, conv_opt({1, 1}, {1, 1}));
  oc.tol = 2e-2;
  run_case(oc, Device::cuda(0));
}
