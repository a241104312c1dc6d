// Tests of the grid helpers and the ste_uniform and lsq quantizers: values, estimators, init, export.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "core/autograd.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/rng.h"
#include "quant/lsq.h"
#include "quant/registry.h"
#include "quant/ste_uniform.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {

QuantSpec spec_of(const std::string& method, int bits, QuantRole role = QuantRole::weight) {
  QuantSpec s;
  s.method = method;
  s.bits = bits;
  s.role = role;
  s.is_signed = role == QuantRole::weight;
  return s;
}

Tensor randn(const Shape& shape, uint64_t seed, double scale = 1) {
  Generator g(seed);
  return Tensor::randn(shape, g, 0, scale);
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const float* p = a.data<float>();
  const float* q = b.data<float>();
  for (int64_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(p + i, q + i, sizeof(float)) != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("grid ranges: sizes and 0 on every grid", "[quant][grid]") {
  for (int b = 1; b <= 16; ++b) {
    GridRange s = grid_range(b, true, GridKind::rq), u = grid_range(b, false);
    CHECK(s.levels() == (int64_t{1} << b));
    CHECK(u.levels() == (int64_t{1} << b));
    CHECK(s.qmin == -(int64_t{1} << (b - 1)));
    CHECK(u.qmin == 0);
    CHECK((s.qmin <= 0 && s.qmax >= 0));
    CHECK((u.qmin <= 0 && u.qmax >= 0));
    if (b >= 2) {
      GridRange y = grid_range(b, true, GridKind::symmetric);
      CHECK(y.levels() == (int64_t{1} << b) - 1);
      CHECK(y.qmin == -y.qmax);
    }
  }
  CHECK_THROWS_AS(grid_range(1, true, GridKind::symmetric), Error);
  CHECK_THROWS_AS(grid_range(0, true), Error);
  CHECK_THROWS_AS(grid_range(17, false), Error);
  // Zero maps to code 0 for any step; halves round to even as torch.round.
  CHECK(grid_code(0.0f, 0.37f, -2, 1) == 0.0f);
  CHECK(grid_code(0.5f, 1.0f, -2, 1) == 0.0f);
  CHECK(grid_code(1.5f, 1.0f, -8, 7) == 2.0f);
  CHECK(grid_code(-9.0f, 1.0f, -8, 7) == -8.0f);
  CHECK(grid_code(100.0f, 1.0f, -8, 7) == 7.0f);
}

TEST_CASE("ste_uniform: values on the max-abs grid and the clipped STE pattern", "[quant][ste_uniform]") {
  SteUniformQuantizer q(spec_of("ste_uniform", 3));  // signed rq grid -4..3, alpha = max|w| / 3
  Tensor w = Tensor::from_vector(std::vector<float>{-1.5f, -0.8f, -0.1f, 0.0f, 0.26f, 0.74f, 1.5f}, {7});
  q.initialize(w);
  CHECK(q.step().item() == Approx(0.5));
  Tensor x = w.clone().detach().set_requires_grad(true);
  Tensor y = q.forward(x);
  std::vector<float> expect = {-1.5f, -1.0f, 0.0f, 0.0f, 0.5f, 0.5f, 1.5f};
  CHECK(y.to_vector<float>() == expect);
  // Every value is a multiple of alpha with a code inside the range.
  IntTensor it = q.export_int(x.detach());
  CHECK(it.codes.to_vector<int>() == std::vector<int>{-3, -2, 0, 0, 1, 1, 3});

  // Gradient: 1 where qmin <= x / alpha <= qmax, else 0. An activation quantizer with a
  // fixed step lets values fall outside.
  QuantSpec as = spec_of("ste_uniform", 2, QuantRole::activation);  // unsigned 0..3
  SteUniformQuantizer a(as);
  {
    NoGradGuard guard;  // a calibration pass: the largest |x| is 3 -> alpha = 3 / qmax = 1
    a.forward(Tensor::from_vector(std::vector<float>{0.0f, 1.0f, 3.0f}));
  }
  a.end_calibration();
  REQUIRE(a.step().item() == Approx(1.0));
  Tensor xa = Tensor::from_vector(std::vector<float>{-0.5f, 0.2f, 2.9f, 3.0f, 3.2f, 10.0f}).set_requires_grad(true);
  Tensor yb = a.forward(xa);
  CHECK(yb.to_vector<float>() == std::vector<float>{0.0f, 0.0f, 3.0f, 3.0f, 3.0f, 3.0f});
  sum(yb).backward();
  CHECK(xa.grad().to_vector<float>() == std::vector<float>{0.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f});
}

TEST_CASE("ste_uniform: per-channel steps and an all-zero tensor", "[quant][ste_uniform]") {
  QuantSpec s = spec_of("ste_uniform", 4);
  s.per_channel = true;
  s.shape = {2, 3};
  SteUniformQuantizer q(s);
  Tensor w = Tensor::from_vector(std::vector<float>{0.7f, -0.2f, 0.1f, 0.0f, 7.0f, -3.5f}, {2, 3});
  q.initialize(w);
  std::vector<float> a = q.step().to_vector<float>();
  REQUIRE(a.size() == 2);
  CHECK(a[0] == Approx(0.1));
  CHECK(a[1] == Approx(1.0));
  CHECK(q.forward(w).to_vector<float>() == std::vector<float>{0.7f, -0.2f, 0.1f, 0.0f, 7.0f, -4.0f});
  SteUniformQuantizer z(spec_of("ste_uniform", 2));
  Tensor zeros = Tensor::zeros({4});
  z.initialize(zeros);
  CHECK(z.forward(zeros).to_vector<float>() == std::vector<float>(4, 0.0f));
}

TEST_CASE("lsq: init, forward, and the alpha gradient against LSQ's formula", "[quant][lsq]") {
  QuantSpec s = spec_of("lsq", 2);  // signed -2..1, Qp = 1
  LsqQuantizer q(s);
  Tensor w = randn({64}, 7, 0.5);
  q.initialize(w);
  const double mean_abs = mean(abs(w)).item();
  CHECK(q.step().item() == Approx(2 * mean_abs / std::sqrt(1.0)).epsilon(1e-5));

  // Hand-chosen values around a known step: alpha = 0.5.
  Tensor raw = q.parameter("alpha_raw");
  raw.fill_(softplus_inverse(0.5));
  REQUIRE(q.step().item() == Approx(0.5).epsilon(1e-6));
  std::vector<float> xv = {-2.0f, -0.6f, -0.1f, 0.2f, 0.4f, 0.9f};
  Tensor x = Tensor::from_vector(xv).set_requires_grad(true);
  Tensor y = q.forward(x);
  CHECK(y.to_vector<float>() == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.0f, 0.5f, 0.5f});
  Generator g(3);
  Tensor dy = Tensor::randn({6}, g);
  y.backward(dy);
  // dL/dalpha = g * sum dy * (round(v) - v inside | qmin below | qmax above), v = x / alpha.
  const double gs = 1.0 / std::sqrt(6.0 * 1.0);
  double expect = 0;
  std::vector<float> dyv = dy.to_vector<float>();
  std::vector<float> dx_expect;
  for (size_t i = 0; i < xv.size(); ++i) {
    const double v = xv[i] / 0.5f;
    double d = v < -2 ? -2 : v > 1 ? 1 : std::nearbyint(v) - v;
    expect += dyv[i] * d;
    dx_expect.push_back(v >= -2 && v <= 1 ? dyv[i] : 0.0f);
  }
  expect *= gs * sigmoid_scalar(softplus_inverse(0.5));  // through the softplus parametrisation
  CHECK(raw.grad().item() == Approx(expect).epsilon(1e-5));
  CHECK(x.grad().to_vector<float>() == dx_expect);
}

TEST_CASE("lsq: the alpha gradient is exact where the clamp holds (finite differences)", "[quant][lsq]") {
  // Outside the range y = alpha * qmin or alpha * qmax: differentiable in alpha_raw, and with
  // grad_scale off LSQ's gradient is the true one (softplus chain included).
  QuantSpec s = spec_of("lsq", 3);
  s.options["grad_scale"] = "false";
  s.per_channel = true;
  s.shape = {2, 4};
  LsqQuantizer q(s);
  Tensor x = Tensor::from_vector(std::vector<float>{5.0f, -6.0f, 7.5f, -9.0f, 4.0f, 8.0f, -5.5f, 6.0f}, {2, 4});
  Tensor raw = Tensor::from_vector(std::vector<float>{-1.0f, 0.2f}).set_requires_grad(true);
  REQUIRE_GRADCHECK(
      [&](const std::vector<Tensor>& in) {
        return CustomFunction::apply<LsqSte>({x, in[0]}, grid_range(3, true), 1.0);
      },
      {raw});
}

TEST_CASE("lsq and ste_uniform: eval forward equals export_int bit for bit", "[quant][export]") {
  for (const std::string method : {"ste_uniform", "lsq"}) {
    for (bool per_channel : {false, true}) {
      for (int bits : {2, 3, 4, 8}) {
        QuantSpec s = spec_of(method, bits);
        s.per_channel = per_channel;
        s.shape = {8, 3, 3, 3};
        QuantizerPtr q = make_quantizer(s);
        Tensor w = randn({8, 3, 3, 3}, 11 + bits, 0.2);
        q->initialize(w);
        q->eval();
        Tensor y = q->forward(w);
        IntTensor it = q->export_int(w);
        INFO(method << " bits " << bits << " per_channel " << per_channel);
        CHECK(bit_equal(y, it.dequantize()));
        GridRange r = q->range();
        for (int c : it.codes.to_vector<int>()) REQUIRE((c >= r.qmin && c <= r.qmax));
      }
    }
  }
}

TEST_CASE("activation calibration: observe without gradients, then init and sign", "[quant][calibration]") {
  QuantSpec s = spec_of("lsq", 4, QuantRole::activation);
  s.signed_auto = true;
  s.calibration_batches = 2;
  LsqQuantizer q(s);
  CHECK(q.calibration_batches() == 2);
  Tensor x = randn({4, 16}, 5);
  Tensor r = relu(x);
  {
    NoGradGuard guard;
    CHECK(bit_equal(q.forward(r), r));  // observed, passed through
  }
  q.end_calibration();
  CHECK(q.initialized());
  CHECK(q.calibration_batches() == 0);
  CHECK_FALSE(q.is_signed());  // all observed values >= 0
  CHECK(q.range().qmin == 0);
  CHECK(q.range().qmax == 15);
  // A signed input at calibration resolves to signed.
  LsqQuantizer q2(s);
  {
    NoGradGuard guard;
    q2.forward(x);
  }
  q2.end_calibration();
  CHECK(q2.is_signed());
  // Non-finite input is refused at calibration.
  LsqQuantizer q3(s);
  Tensor bad = Tensor::from_vector(std::vector<float>{1.0f, NAN});
  NoGradGuard guard;
  CHECK_THROWS_AS(q3.forward(bad), Error);
}

TEST_CASE("registry: lookup, unknown names listed, duplicates refused", "[quant][registry]") {
  CHECK(has_quantizer("ste_uniform"));
  CHECK(has_quantizer("lsq"));
  std::string msg;
  try {
    find_quantizer("nope");
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("unknown quantization method 'nope'") != std::string::npos);
  CHECK(msg.find("lsq") != std::string::npos);
  CHECK(msg.find("ste_uniform") != std::string::npos);
  CHECK_THROWS_AS(register_quantizer("lsq", quantizer_factory<LsqQuantizer>(), {}), Error);
  register_quantizer_alias("test_lsq_alias", "lsq");
  CHECK(find_quantizer("test_lsq_alias").name == "lsq");
  CHECK_THROWS_AS(register_quantizer_alias("x_alias", "missing_method"), Error);
}
