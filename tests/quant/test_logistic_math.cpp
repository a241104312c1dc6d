// The shared element-wise math of the logistic-bin kernels (quant/kernels/logistic_math.h):
// fast_exp and fast_log against libm, and the Gumbel noise of a Philox word.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/rng.h"
#include "quant/kernels/logistic_math.h"

using namespace lowbit;

TEST_CASE("logistic math: fast_exp is exp to about 2e-7 relative, 0 below -87") {
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double ref = std::exp(static_cast<double>(x));
    REQUIRE(std::fabs(fast_exp(x) - ref) / ref < 3e-7);
  }
  CHECK(fast_exp(-87.5f) == 0.0f);
  CHECK(fast_exp(-1e30f) == 0.0f);
  CHECK(tail_exp(-61.0f) == 0.0f);
  CHECK(tail_exp(5.0f) == 1.0f);
}

TEST_CASE("logistic math: fast_log is log to about 2e-7 absolute-or-relative over the positive normals") {
  // every exponent, and a sweep of mantissas across the sqrt(1/2) switch
  for (int ex = -126; ex <= 127; ++ex)
    for (float m = 1.0f; m < 2.0f; m += 0.00731f) {
      const float x = std::ldexp(m, ex);
      const double ref = std::log(static_cast<double>(x));
      REQUIRE(std::fabs(fast_log(x) - ref) <= 2e-7 * std::max(1.0, std::fabs(ref)));
    }
  CHECK(fast_log(1.0f) == 0.0f);
  // next to 1 (the Gumbel noise of the largest uniforms) the relative error stays small too
  for (float x : {1.0f - 0x1p-24f, 1.0f - 0x1p-20f, 1.0f + 0x1p-23f, 1.0f - 0x1p-10f}) {
    const double ref = std::log(static_cast<double>(x));
    CHECK(std::fabs(fast_log(x) - ref) <= 1e-6 * std::fabs(ref));
  }
}

TEST_CASE("logistic math: the Gumbel noise of a word is finite at both ends and Gumbel-distributed") {
  for (uint32_t w : {0u, 0x1FFu, 0x200u, 0xFFFFFDFFu, 0xFFFFFE00u, 0xFFFFFFFFu})
    REQUIRE(std::isfinite(gumbel_of_word(w)));
  CHECK(gumbel_of_word(0xFFFFFFFFu) > gumbel_of_word(0u));  // increasing in the word
  // Standard Gumbel: mean = Euler's gamma, variance = pi^2 / 6, P(G <= 0) = exp(-1).
  const Generator g(123);
  const int n = 1 << 20;
  double s = 0, s2 = 0, below = 0;
  for (int i = 0; i < n / 4; ++i)
    for (uint32_t w : g.block(static_cast<uint64_t>(i))) {
      const double v = gumbel_of_word(w);
      s += v, s2 += v * v, below += v <= 0;
    }
  const double mean = s / n, var = s2 / n - mean * mean;
  CHECK(mean == Approx(0.5772156649).margin(0.005));
  CHECK(var == Approx(M_PI * M_PI / 6).margin(0.01));
  CHECK(below / n == Approx(std::exp(-1.0)).margin(0.002));
}
