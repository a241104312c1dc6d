// rq: eval rounding, the Gumbel-max sample follows pi, concrete gradients by finite differences,
// the ST variant's forward and backward, export round trip.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/autograd.h"
#include "core/ops/reduce.h"
#include "core/rng.h"
#include "quant/cpq_kernel.h"
#include "quant/registry.h"
#include "quant/rq.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {
QuantSpec rq_spec(int bits) {
  QuantSpec s;
  s.method = "rq";
  s.bits = bits;
  s.shape = {64};
  return s;
}
bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}
Tensor concrete(const std::vector<Tensor>& in, bool st, int window = 0) {
  RqConcrete::Setup s;
  s.range = grid_range(2, true);
  s.temperature = 0.7;
  s.straight_through = st;
  s.window = window;
  s.gen = Generator(77);
  s.base = 5;
  s.map = PositiveMap::softplus;
  return CustomFunction::apply<RqConcrete>(in, s);
}
}  // namespace

TEST_CASE("rq: eval is clamp(round(x/alpha)) * alpha and exports bit for bit") {
  for (int bits : {2, 4, 8}) {
    RqQuantizer q(rq_spec(bits));
    Generator g(2);
    Tensor w = Tensor::randn({64}, g, 0, 0.2);
    q.forward(w);
    q.eval();
    Tensor y = q.forward(w);
    const float a = q.step().item<float>();
    const GridRange r = grid_range(bits, true);
    for (int64_t i = 0; i < 64; ++i)
      REQUIRE(y.data<float>()[i] ==
              std::min(std::max(std::nearbyint(w.data<float>()[i] / a), float(r.qmin)), float(r.qmax)) * a);
    CHECK(bit_equal(q.export_int(w).dequantize(), y));
  }
  CHECK(find_quantizer("rq").capabilities.options.size() == 6);
}

TEST_CASE("rq: the ST sample of a value is distributed as pi (Gumbel-max)") {
  QuantSpec s = rq_spec(2);
  s.shape = {20000};
  RqQuantizer q(s);
  q.set_generator(Generator(5));
  const float alpha = 0.5f, sigma = 0.3f, x = 0.1f;
  q.forward(Tensor::full({20000}, 0.2));  // init, then set the parameters
  q.parameter("alpha_raw").copy_(Tensor::scalar(positive_inverse(alpha, positive_map_of(s))));
  q.parameter("sigma_raw").copy_(Tensor::scalar(positive_inverse(sigma, positive_map_of(s))));
  Tensor y = q.forward(Tensor::full({20000}, x));
  const float a = q.step().item<float>(), sg = q.sigma_values()[0];
  const GridRange r = grid_range(2, true);
  std::vector<float> pi(4);
  categorical_probs(x, a, sg, r, nullptr, pi.data());
  std::vector<double> freq(4, 0);
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float c = y.data<float>()[i] / a;
    REQUIRE(c == std::nearbyint(c));
    freq[static_cast<size_t>(c - r.qmin)] += 1.0 / y.numel();
  }
  for (int k = 0; k < 4; ++k) CHECK(freq[k] == Approx(pi[k]).margin(0.012));
}

TEST_CASE("rq: concrete gradients by finite differences; ST pretends the same gradient") {
  Tensor x = test::random_input({24}, 3, -1.2, 0.8);
  Tensor ar = Tensor::scalar(softplus_inverse(0.5)).set_requires_grad();
  Tensor sr = Tensor::scalar(softplus_inverse(0.35)).set_requires_grad();
  test::GradcheckOptions opt;
  opt.eps = 1e-3;
  opt.atol = 5e-3;
  opt.rtol = 3e-2;
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return concrete(in, false); }, {x, ar, sr}, opt);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return concrete(in, false, 1); }, {x, ar, sr}, opt);
  // ST: a grid point forward, the soft sample's gradient backward
  Tensor ys = concrete({x, ar, sr}, false), yh = concrete({x, ar, sr}, true);
  const float a = float(softplus(softplus_inverse(0.5)));
  for (int64_t i = 0; i < 24; ++i) {
    const float c = yh.data<float>()[i] / a;
    CHECK(c == std::nearbyint(c));
  }
  x.zero_grad();
  ar.zero_grad();
  sum(ys).backward();
  Tensor gs = x.grad().clone(), gas = ar.grad().clone();
  x.zero_grad();
  ar.zero_grad();
  sum(yh).backward();
  CHECK(bit_equal(x.grad(), gs));
  CHECK(bit_equal(ar.grad(), gas));
}

TEST_CASE("rq: 8 bits uses a local window and stays near x") {
  RqQuantizer q(rq_spec(8));
  q.set_generator(Generator(9));
  Generator g(4);
  Tensor w = Tensor::randn({64}, g, 0, 0.2);
  Tensor y = q.forward(w);
  const float a = q.step().item<float>(), sg = q.sigma_values()[0];
  for (int64_t i = 0; i < 64; ++i) REQUIRE(std::fabs(y.data<float>()[i] - w.data<float>()[i]) <= 3 * sg + 1.5f * a);
}

TEST_CASE("rq: the extreme uniform draws give a finite sample and gradient") {
  // The first Philox blocks of the test's stream holding a word at the top (all 23 bits the
  // draw uses set) and at the bottom of the range: the float uniform used to round to 1 at the
  // top, where log(-log U) was -inf and the sample NaN.
  const Generator gen(77);
  for (uint32_t want : {0x7FFFFFu, 0u}) {
    uint64_t hit = 0;
    for (uint64_t b = 0;; ++b) {
      const auto blk = gen.block(b);
      if (std::any_of(blk.begin(), blk.end(), [&](uint32_t w) { return (w >> 9) == want; })) {
        hit = b;
        break;
      }
    }
    RqConcrete::Setup s;
    s.range = grid_range(2, true);  // 4 levels: one block per element, element 0 uses block `base`
    s.gen = gen;
    s.base = hit;
    s.map = PositiveMap::softplus;
    for (bool st : {true, false}) {
      s.straight_through = st;
      Tensor x = Tensor::full({1}, 0.1);
      x.set_requires_grad(true);
      Tensor a = Tensor::scalar(positive_inverse(0.5, s.map)), sg = Tensor::scalar(positive_inverse(0.2, s.map));
      a.set_requires_grad(true);
      sg.set_requires_grad(true);
      Tensor y = CustomFunction::apply<RqConcrete>({x, a, sg}, s);
      REQUIRE(std::isfinite(y.item<float>()));
      sum(y).backward();
      REQUIRE(std::isfinite(x.grad().item<float>()));
      REQUIRE(std::isfinite(a.grad().item<float>()));
      REQUIRE(std::isfinite(sg.grad().item<float>()));
    }
  }
}
