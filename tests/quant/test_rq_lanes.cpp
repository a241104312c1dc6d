// The CPU RQ pass (quant/cpu/rq.cpp, kLanes elements at a time) against rq_element
// (quant/kernels/logistic_math.h, the per-element code the CUDA kernel runs) on the same
// Philox words: the same samples and gradients, over full and windowed grids, per-tensor and
// per-channel steps, and inputs in, at the edge of and far outside the grid (inf; NaN apart).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "quant/kernels/cpq.h"

using namespace lowbit;

namespace {
struct Case {
  int bits;
  int window;
  bool st;
  float lam;
  std::vector<float> alpha, sigma;
};

std::vector<float> inputs(int64_t n, uint64_t seed) {
  const Generator g(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const PhiloxBlock b = g.block(static_cast<uint64_t>(i));
    const float u = static_cast<float>(b[0] >> 8) * 0x1p-24f;
    x[static_cast<size_t>(i)] = (u - 0.5f) * (b[1] % 8 == 0 ? 40.0f : 3.0f);  // some far outside the grid
  }
  const float special[] = {INFINITY, -INFINITY, 0.0f, -0.0f, 1e30f, -1e30f, 1e-30f};
  for (size_t i = 0; i < std::size(special) && i < x.size(); ++i) x[i * 37 % x.size()] = special[i];
  return x;
}

bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
}  // namespace

TEST_CASE("rq lanes: the CPU pass is rq_element element for element") {
  const std::vector<Case> cases = {
      {2, 0, true, 1.0f, {0.5f}, {0.17f}},
      {2, 0, false, 0.7f, {0.5f, 0.3f, 0.9f}, {0.2f, 0.05f, 0.6f}},
      {3, 0, true, 0.5f, {0.25f}, {0.1f}},
      {4, 0, false, 1.0f, {0.1f, 0.2f}, {0.03f}},
      {1, 0, true, 1.0f, {0.7f}, {0.3f}},
      {5, 2, true, 1.0f, {0.08f}, {0.05f}},
      {8, 1, false, 0.9f, {0.01f, 0.02f, 0.015f}, {0.004f, 0.007f, 0.002f}},
      {8, 6, true, 1.0f, {0.01f}, {0.02f}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.bits, c.window, c.st, c.alpha.size());
    const int64_t C = static_cast<int64_t>(std::max(c.alpha.size(), c.sigma.size()));
    const int64_t n = C * 5003;  // items of 4096 and a ragged last block of lanes
    const std::vector<float> xv = inputs(n, static_cast<uint64_t>(c.bits * 10 + c.window));
    Tensor x = Tensor::from_vector(xv, {C, n / C});
    // No upstream gradient at the 1e30 inputs: their alpha gradient is float noise of that size
    // in both forms (a cancellation in the far tail), which would swamp the sums compared below.
    std::vector<float> dyv = inputs(n, 99);
    for (size_t i = 0; i < dyv.size(); ++i) dyv[i] = !std::isfinite(dyv[i]) || std::fabs(xv[i]) > 1e6f ? 0.0f : dyv[i];
    Tensor dy = Tensor::from_vector(dyv, {C, n / C});
    RqArgs a;
    a.range = grid_range(c.bits, true);
    a.temperature = c.lam;
    a.straight_through = c.st;
    a.window = c.window;
    a.gen = Generator(2024);
    a.base = 11;
    a.alpha = c.alpha.data();
    a.sigma = c.sigma.data();
    a.alpha_size = static_cast<int64_t>(c.alpha.size());
    a.sigma_size = static_cast<int64_t>(c.sigma.size());
    Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape());
    std::vector<double> da(c.alpha.size(), 0.0), ds(c.sigma.size(), 0.0);
    cpu::rq_forward(x, a, y);
    cpu::rq_backward(x, dy, a, dx, da, ds);

    const RqElementSetup p = rq_element_setup(a);
    const uint64_t nb = static_cast<uint64_t>((p.levels + 3) / 4);
    std::vector<double> ra(da.size(), 0.0), rs(ds.size(), 0.0), ra_abs = ra, rs_abs = rs;
    int64_t y_diff = 0, dx_far = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t ch = i / (n / C);
      const float al = c.alpha[c.alpha.size() == 1 ? 0 : static_cast<size_t>(ch)];
      const float sg = c.sigma[c.sigma.size() == 1 ? 0 : static_cast<size_t>(ch)];
      const uint64_t first = a.base + static_cast<uint64_t>(i) * nb;
      const RqElementResult r = rq_element(xv[static_cast<size_t>(i)], dyv[static_cast<size_t>(i)], true, al, sg, p,
                                           [&](int j, uint32_t* w) {
                                             const PhiloxBlock b = a.gen.block(first + static_cast<uint64_t>(j));
                                             std::copy(b.begin(), b.end(), w);
                                           });
      const float yi = y.data<float>()[i], dxi = dx.data<float>()[i];
      y_diff += c.st ? !same(yi, r.y) : !(std::fabs(yi - r.y) <= 1e-5f * (std::fabs(r.y) + al));
      dx_far += !(std::fabs(dxi - r.dx) <= 1e-3f * std::fabs(dyv[static_cast<size_t>(i)]) + 1e-6f);
      const size_t ka = c.alpha.size() == 1 ? 0 : static_cast<size_t>(ch);
      const size_t ks = c.sigma.size() == 1 ? 0 : static_cast<size_t>(ch);
      ra[ka] += r.dalpha, rs[ks] += r.dsigma;
      ra_abs[ka] += std::fabs(r.dalpha), rs_abs[ks] += std::fabs(r.dsigma);
    }
    // The two are the same operations but compile to different instruction sequences, and the
    // compiler fuses multiply-adds differently in each (with -ffp-contract=off they agree bit for
    // bit): the hard sample is the same (it could flip only at a Gumbel-max tie), the soft one
    // within rounding, and the gradients within 1e-3 of |dy| (far outside the grid dx is a sum
    // of terms that cancel, so both carry rounding noise there).
    CHECK(y_diff == 0);
    CHECK(dx_far == 0);
    // The sums, against the sum of their terms' sizes (the terms cancel in part): 3e-3, since
    // at 8 bits with sigma a fraction of alpha the far-tail terms' noise is scaled by 1/sigma^2.
    for (size_t k = 0; k < da.size(); ++k) CHECK(std::fabs(da[k] - ra[k]) <= 3e-3 * ra_abs[k]);
    for (size_t k = 0; k < ds.size(); ++k) CHECK(std::fabs(ds[k] - rs[k]) <= 3e-3 * rs_abs[k]);
  }
}

TEST_CASE("rq lanes: a NaN input gives a NaN sample and alpha gradient, no x or sigma gradient") {
  Tensor x = Tensor::from_vector(std::vector<float>{0.3f, NAN, -0.2f});
  Tensor dy = Tensor::from_vector(std::vector<float>{1.0f, 1.0f, 1.0f});
  const float al = 0.5f, sg = 0.2f;
  RqArgs a;
  a.range = grid_range(2, true);
  a.gen = Generator(1);
  a.alpha = &al;
  a.sigma = &sg;
  Tensor y = Tensor::empty({3}), dx = Tensor::empty({3});
  std::vector<double> da(1, 0.0), ds(1, 0.0);
  cpu::rq_forward(x, a, y);
  cpu::rq_backward(x, dy, a, dx, da, ds);
  CHECK(std::isnan(y.data<float>()[1]));
  CHECK(std::isfinite(y.data<float>()[0]));
  CHECK(dx.data<float>()[1] == 0.0f);
  CHECK(std::isnan(da[0]));
  CHECK(std::isfinite(ds[0]));
}
