// Hard-concrete bit gates: the formulas, the nesting, the L0 penalty (QUANTIZERS.md check 8).
#include <catch2/catch.hpp>

#include <cmath>

#include "core/rng.h"
#include "quant/bit_gates.h"
#include "support/gradcheck.h"

using namespace lowbit;

TEST_CASE("hard concrete: P(z != 0), the eval gate and its exact zero (check 8)") {
  const double beta = 2.0 / 3, gamma = -0.1, zeta = 1.1;
  for (double la : {-3.0, -0.5, 0.0, 1.2, 4.0})
    CHECK(HardConcrete::p_open(la) == Approx(1 / (1 + std::exp(-(la - beta * std::log(-gamma / zeta))))));
  // Sig(log a) = 1/12 at log a = log(1/11): the eval gate is exactly 0 there and below
  CHECK(HardConcrete::eval(std::log(1.0 / 11)) == 0.0);
  CHECK(HardConcrete::eval(std::log(1.0 / 11) - 1) == 0.0);
  CHECK(HardConcrete::eval(std::log(1.0 / 11) + 1e-3) > 0.0);
  CHECK(HardConcrete::eval(std::log(11.0)) == 1.0);
  CHECK(HardConcrete::eval(0.0) == Approx(0.5 * 1.2 - 0.1));
  // the sample at u = 1/2 is the stretched Sig(log a / beta)
  CHECK(HardConcrete::sample(0.3, 0.5) == Approx(std::clamp(1.2 / (1 + std::exp(-0.3 / beta)) - 0.1, 0.0, 1.0)));
  // Monte Carlo: the fraction of non-zero samples is P(z != 0)
  Generator g(9);
  for (double la : {-1.0, 0.5}) {
    int open = 0;
    const int n = 40000;
    for (int i = 0; i < n; ++i) open += HardConcrete::sample(la, (g.next_u32() + 0.5) / 4294967296.0) > 0;
    CHECK(double(open) / n == Approx(HardConcrete::p_open(la)).margin(0.01));
  }
}

TEST_CASE("nested gates: a closed coarse level closes the finer ones; bits read off") {
  Tensor la = Tensor::from_vector(std::vector<float>{3.0f, -4.0f, 3.0f, 3.0f});  // levels 2..5
  Generator g(1);
  std::vector<float> z = nested_gates(la, false, g).to_vector<float>();
  CHECK(z == std::vector<float>{1.0f, 0.0f, 0.0f, 0.0f});
  CHECK(eval_gates(la) == z);
  CHECK(open_bits(la) == 2);
  CHECK(open_bits(Tensor::full({7}, 3.0)) == 8);
  CHECK(open_bits(Tensor::full({7}, -4.0)) == 1);
  CHECK(g.offset() == 0);  // eval draws nothing
  Tensor s = nested_gates(la, true, g);
  CHECK(g.offset() == 4);
  for (float v : s.to_vector<float>()) CHECK((v >= 0 && v <= 1));
}

TEST_CASE("nested gates and the L0 penalty: gradients by finite differences") {
  Tensor la = Tensor::from_vector(std::vector<float>{0.3f, -0.2f, 0.6f}).set_requires_grad();
  // eval (deterministic) gates inside the unclipped region
  REQUIRE_GRADCHECK(
      [](const std::vector<Tensor>& in) {
        Generator g(0);
        return nested_gates(in[0], false, g);
      },
      {la}, {1e-3, 1e-3, 1e-2});
  // sampled gates with a fixed stream (the same u in every evaluation)
  Tensor lb = Tensor::from_vector(std::vector<float>{2.0f, 1.5f, 2.5f}).set_requires_grad();
  REQUIRE_GRADCHECK(
      [](const std::vector<Tensor>& in) {
        Generator g(123);
        return nested_gates(in[0], true, g);
      },
      {lb}, {1e-3, 1e-3, 1e-2});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return l0_penalty(in[0], 7.0); }, {la}, {1e-3, 1e-3, 1e-2});
  CHECK(l0_penalty(la, 2.0).item() ==
        Approx(2.0 * (HardConcrete::p_open(0.3f) + HardConcrete::p_open(-0.2f) + HardConcrete::p_open(0.6f))));
}
