// The logistic-bin categorical and the fused CPQ kernels against a double-precision reference
// (QUANTIZERS.md checks 1-7 at the kernel level).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "quant/cpq_kernel.h"

using namespace lowbit;

namespace {

long double sig(long double t) { return 1.0L / (1.0L + std::exp(-t)); }

// m(x) = sum_k pi_k gbar_k in long double, straight from the definition; each bin mass
// Sig(b) - Sig(a) is taken as Sig(-a) - Sig(-b) when both are above 0, so it does not cancel
// to 0 for x far below the bin (accurate while the masses stay above ~1e-4900). gbar = alpha_g * code.
double ref_mean(double x, double alpha, double sigma, GridRange r, const std::vector<double>& v, double alpha_g) {
  long double R = 0, N = 0;
  for (int k = 0; k < int(r.levels()); ++k) {
    const long double g = static_cast<long double>(alpha) * (r.qmin + k);
    const long double a = (g - alpha / 2.0L - x) / sigma, b = (g + alpha / 2.0L - x) / sigma;
    const long double mass = a > 0 ? sig(-a) - sig(-b) : sig(b) - sig(a);
    const long double rk = (v.empty() ? 1.0L : v[k]) * mass;
    R += rk;
    N += rk * alpha_g * (r.qmin + k);
  }
  return static_cast<double>(N / R);
}

struct Grads {
  float dx;
  double da, ds;
};

Grads kernel_grads(float x, float alpha, float sigma, GridRange r, bool alpha_direct, const CodeMask& m = {}) {
  CpqArgs a;
  a.range = r;
  a.alpha = &alpha;
  a.sigma = &sigma;
  a.mask = m;
  float dy = 1.0f, dx = 0;
  double da = 0, ds = 0;
  CpqGradOut out;
  out.dx = &dx;
  out.dalpha = &da;
  out.dsigma = &ds;
  out.alpha_direct = alpha_direct;
  cpq_backward(&x, &dy, 1, a, out);
  return {dx, da, ds};
}

}  // namespace

TEST_CASE("grids: sizes, ranges and 0 on every grid (check 1)") {
  for (int b = 1; b <= 8; ++b) {
    GridRange rq = grid_range(b, true, GridKind::rq), un = grid_range(b, false);
    CHECK(rq.levels() == (1 << b));
    CHECK(un.levels() == (1 << b));
    CHECK((rq.qmin <= 0 && rq.qmax >= 0));
    CHECK(un.qmin == 0);
    if (b >= 2) {
      GridRange sy = grid_range(b, true, GridKind::symmetric);
      CHECK(sy.levels() == (int64_t(1) << b) - 1);
      CHECK(sy.qmin == -sy.qmax);
    }
  }
  CHECK(grid_range(2, true, GridKind::rq).qmin == -2);
  CHECK(grid_range(2, true, GridKind::rq).qmax == 1);
  CHECK_THROWS_AS(grid_range(1, true, GridKind::symmetric), Error);
  CHECK_THROWS_AS(grid_range(0, true, GridKind::rq), Error);
}

TEST_CASE("categorical: pi sums to 1 and matches the double reference (check 2)") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> ux(-50, 50), ua(0.01f, 2), us(0.001f, 5);
  for (int g = 0; g < 3; ++g) {
    for (int b : {2, 3, 4, 8}) {
      GridRange r = g == 2 ? grid_range(b, false) : grid_range(b, true, g == 0 ? GridKind::rq : GridKind::symmetric);
      std::vector<float> pi(int(r.levels()));
      for (int t = 0; t < 300; ++t) {
        const float alpha = ua(rng), sigma = us(rng) * alpha;
        const float x = t % 3 == 0 ? ux(rng) * 1e3f : ux(rng) * alpha * 0.1f * static_cast<float>(int(r.levels()));
        categorical_probs(x, alpha, sigma, r, nullptr, pi.data());
        double sum = 0;
        for (float p : pi) {
          REQUIRE(std::isfinite(p));
          REQUIRE(p >= 0);
          sum += p;
        }
        INFO("x " << x << " alpha " << alpha << " sigma " << sigma << " bits " << b);
        REQUIRE(sum == Approx(1.0).margin(1e-5));
        // mean against the definition where the definition is itself accurate in double
        const double lo = alpha * (r.qmin - 0.5), hi = alpha * (r.qmax + 0.5);
        if (x > lo - 20 * sigma && x < hi + 20 * sigma) {
          double m = 0;
          for (int k = 0; k < int(r.levels()); ++k) m += pi[k] * (r.qmin + k) * static_cast<double>(alpha);
          REQUIRE(m == Approx(ref_mean(x, alpha, sigma, r, {}, alpha)).margin(2e-5 * alpha * int(r.levels())));
        }
      }
    }
  }
}

TEST_CASE("categorical: far outside the range and sigma -> 0 (checks 2, 4)") {
  GridRange r = grid_range(3, true, GridKind::rq);
  std::vector<float> pi(int(r.levels()));
  // tiny sigma: one-hot at the nearest point, inside and outside the range
  for (float x : {0.31f, -0.7f, 2.9f, 1e6f, -1e6f}) {
    categorical_probs(x, 1.0f, 1e-3f, r, nullptr, pi.data());
    const int k = static_cast<int>(std::min(std::max(std::nearbyint(x), -4.0f), 3.0f)) - r.qmin;
    for (int i = 0; i < int(r.levels()); ++i) CHECK(pi[i] == Approx(i == k ? 1.0 : 0.0).margin(1e-6));
  }
  // far below with sigma ~ alpha: the logistic tail is exponential, pi_k ~ exp(-k alpha/sigma)
  categorical_probs(-1e4f, 1.0f, 1.0f, r, nullptr, pi.data());
  const double E = std::exp(-1.0);
  double z = 0;
  for (int k = 0; k < int(r.levels()); ++k) z += std::pow(E, k);
  for (int k = 0; k < int(r.levels()); ++k) CHECK(pi[k] == Approx(std::pow(E, k) / z).margin(1e-6));
}

TEST_CASE("categorical: argmax pi is the clamped nearest point (check 3)") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> ux(-6, 6), ua(0.05f, 1), us(0.01f, 3);
  for (int b : {2, 3, 4}) {
    GridRange r = grid_range(b, true, GridKind::rq);
    std::vector<float> pi(int(r.levels())), y(1);
    for (int t = 0; t < 2000; ++t) {
      const float alpha = ua(rng), sigma = us(rng) * alpha, x = ux(rng) * alpha * (1 << (b - 1));
      const float u = x / alpha;
      if (std::fabs(u - std::floor(u) - 0.5f) < 1e-3f) continue;  // away from ties
      categorical_probs(x, alpha, sigma, r, nullptr, pi.data());
      int best = 0;
      for (int k = 1; k < int(r.levels()); ++k)
        if (pi[k] > pi[best]) best = k;
      const float expect = std::min(std::max(std::nearbyint(u), float(r.qmin)), float(r.qmax));
      INFO("x " << x << " alpha " << alpha << " sigma " << sigma);
      REQUIRE(best + r.qmin == expect);
      // the fused forward is the same point, bit for bit alpha * code (check 6)
      CpqArgs a;
      a.range = r;
      a.alpha = &alpha;
      a.sigma = &sigma;
      cpq_forward(&x, 1, a, y.data());
      REQUIRE(y[0] == alpha * expect);
    }
  }
}

TEST_CASE("cpq backward equals finite differences of m for x, alpha, sigma (check 5)") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> ux(-1, 1), ua(0.2, 1.5), us(0.15, 2);
  for (bool is_signed : {true, false}) {
    for (int b : {2, 3, 4}) {
      GridRange r = grid_range(b, is_signed);
      for (int t = 0; t < 60; ++t) {
        const double alpha = ua(rng), sigma = us(rng) * alpha;
        const double mid = alpha * (r.qmin + r.qmax) / 2, half = alpha * int(r.levels()) / 2 + 3 * sigma;
        const double x = mid + ux(rng) * half;
        const float xf = float(x), af = float(alpha), sf = float(sigma);
        const double xd = xf, ad = af, sd = sf;  // differentiate at the float point
        const double h = 1e-4;
        const double fx = (ref_mean(xd + h, ad, sd, r, {}, ad) - ref_mean(xd - h, ad, sd, r, {}, ad)) / (2 * h);
        const double fa = (ref_mean(xd, ad + h, sd, r, {}, ad) - ref_mean(xd, ad - h, sd, r, {}, ad)) / (2 * h);
        const double fs = (ref_mean(xd, ad, sd + h, r, {}, ad) - ref_mean(xd, ad, sd - h, r, {}, ad)) / (2 * h);
        Grads k = kernel_grads(xf, af, sf, r, false);
        INFO("bits " << b << " x " << x << " alpha " << alpha << " sigma " << sigma);
        REQUIRE(k.dx == Approx(fx).margin(2e-4));
        REQUIRE(k.da == Approx(fa).margin(5e-4));
        REQUIRE(k.ds == Approx(fs).margin(5e-4));
        // the direct term of x_hat = alpha k*
        Grads kd = kernel_grads(xf, af, sf, r, true);
        const double code = std::min(std::max(std::nearbyint(xf / af), float(r.qmin)), float(r.qmax));
        REQUIRE(kd.da == Approx(k.da + code).margin(1e-5));
      }
    }
  }
}

TEST_CASE("cpq backward: the cluster-promoting shape of dm/dx (check 5)") {
  GridRange r2 = grid_range(2, true, GridKind::rq);
  const float alpha = 0.5f, sigma = 0.01f;
  // at a grid point: ~0; at an interior bin boundary: alpha/(4 sigma)
  CHECK(std::fabs(kernel_grads(0.5f, alpha, sigma, r2, false).dx) < 1e-6);
  CHECK(kernel_grads(0.25f, alpha, sigma, r2, false).dx == Approx(alpha / (4 * sigma)).epsilon(1e-3));
  CHECK(kernel_grads(-0.25f, alpha, sigma, r2, false).dx == Approx(alpha / (4 * sigma)).epsilon(1e-3));
  // far outside: 0 (and no NaN from underflowing masses)
  for (float x : {-1e3f, 1e3f, -3.0f, 5.0f}) {
    Grads g = kernel_grads(x, alpha, sigma, r2, false);
    CHECK(g.dx == 0.0f);
    CHECK(std::isfinite(g.da));
    CHECK(std::isfinite(g.ds));
  }
  CHECK(std::fabs(kernel_grads(-1e3f, 0.5f, 0.5f, r2, false).dx) < 1e-6);
  // sigma >> alpha at 8 bits: plain STE inside the range
  GridRange r8 = grid_range(8, true, GridKind::rq);
  for (float x : {-0.3f, 0.0f, 0.37f, 0.9f})
    CHECK(kernel_grads(x, 0.01f, 0.05f, r8, false).dx == Approx(1.0).margin(0.01));
}

TEST_CASE("cpq kernels: masks give the nearest survivor and match the masked reference (check 7)") {
  GridRange r = grid_range(3, true, GridKind::rq);  // codes -4..3
  const int n = int(r.levels());
  // drop_bit: odd codes dropped by bit 4 (level 3), +-2 by bit 2 (level 2)
  std::vector<uint8_t> drop(n, 0);
  for (int k = 0; k < n; ++k) {
    const int c = r.qmin + k;
    if (c % 2 != 0)
      drop[k] = 4;
    else if (c % 4 != 0)
      drop[k] = 2;
  }
  std::vector<float> xs = {-3.7f, -2.6f, -1.2f, -0.4f, 0.3f, 0.9f, 1.6f, 2.4f, 2.9f, 7.0f, -9.0f};
  const float alpha = 1.0f, sigma = 0.4f;
  for (uint8_t tm : {uint8_t(0), uint8_t(4), uint8_t(6)}) {
    std::vector<float> v(n);
    for (int k = 0; k < n; ++k) v[k] = (drop[k] & tm) ? 0.0f : 1.0f;
    CpqArgs a;
    a.range = r;
    a.alpha = &alpha;
    a.sigma = &sigma;
    a.mask.drop_bit = drop.data();
    a.mask.tensor_mask = tm;
    std::vector<float> y(xs.size()), dx(xs.size()), dy(xs.size(), 1.0f);
    cpq_forward(xs.data(), int64_t(xs.size()), a, y.data());
    CpqGradOut out;
    out.dx = dx.data();
    cpq_backward(xs.data(), dy.data(), int64_t(xs.size()), a, out);
    std::vector<float> pi(n);
    for (size_t i = 0; i < xs.size(); ++i) {
      float best = 1e9f, expect = 0;
      for (int k = 0; k < n; ++k)
        if (v[k] > 0 && std::fabs(xs[i] - (r.qmin + k)) < best)
          best = std::fabs(xs[i] - (r.qmin + k)), expect = float(r.qmin + k);
      INFO("mask " << int(tm) << " x " << xs[i]);
      CHECK(y[i] == expect);
      categorical_probs(xs[i], alpha, sigma, r, v.data(), pi.data());
      double sum = 0;
      for (int k = 0; k < n; ++k) {
        sum += pi[k];
        if (v[k] == 0) CHECK(pi[k] == 0.0f);
      }
      CHECK(sum == Approx(1.0).margin(1e-5));
      const double h = 1e-4;
      const std::vector<double> vd(v.begin(), v.end());
      const double fd =
          (ref_mean(xs[i] + h, alpha, sigma, r, vd, alpha) - ref_mean(xs[i] - h, alpha, sigma, r, vd, alpha)) / (2 * h);
      CHECK(dx[i] == Approx(fd).margin(2e-4));
    }
  }
}

TEST_CASE("cpq kernels: per-element masks, channels and thread-count independence") {
  GridRange r = grid_range(2, true, GridKind::rq);
  const int64_t C = 3, inner = 5000, total = C * inner;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 0.6f);
  std::vector<float> x(total), dy(total);
  std::vector<uint8_t> em(total);
  for (int64_t i = 0; i < total; ++i) x[i] = nd(rng), dy[i] = nd(rng), em[i] = uint8_t(rng() % 2 ? 2 : 0);
  std::vector<uint8_t> drop = {0, 2, 0, 2};  // codes -1 and +1 droppable (level 2)
  std::vector<float> alpha = {0.4f, 0.5f, 0.7f}, sigma = {0.2f};
  CpqArgs a;
  a.range = r;
  a.alpha = alpha.data();
  a.alpha_size = C;
  a.sigma = sigma.data();
  a.channels = C;
  a.mask.drop_bit = drop.data();
  a.mask.elem_mask = em.data();
  const int prev_threads = get_num_threads();
  auto run = [&](int threads, std::vector<float>& y, std::vector<float>& dx, std::vector<double>& da, double& ds) {
    set_num_threads(threads);
    y.assign(total, 0);
    dx.assign(total, 0);
    da.assign(C, 0);
    cpq_forward(x.data(), total, a, y.data());
    CpqGradOut out;
    out.dx = dx.data();
    out.dalpha = da.data();
    out.dsigma = &ds;
    cpq_backward(x.data(), dy.data(), total, a, out);
  };
  std::vector<float> y1, y2, dx1, dx2;
  std::vector<double> da1, da2;
  double ds1 = 0, ds2 = 0;
  run(1, y1, dx1, da1, ds1);
  run(2, y2, dx2, da2, ds2);
  set_num_threads(prev_threads);
  CHECK(y1 == y2);
  CHECK(dx1 == dx2);
  CHECK(da1 == da2);
  CHECK(ds1 == ds2);
  // per element: the channel's alpha, and the element's own mask
  for (int64_t i = 0; i < total; i += 97) {
    const float al = alpha[i / inner];
    float c = std::min(std::max(std::nearbyint(x[i] / al), -2.0f), 1.0f);
    if (em[i] && (c == -1 || c == 1)) c = (x[i] / al < -1.0f) ? -2.0f : 0.0f;  // survivors -2, 0
    INFO("i " << i << " x " << x[i]);
    REQUIRE(y1[i] == al * c);
  }
  // the per-channel alpha gradient equals the sum of single-element gradients
  double expect = 0;
  for (int64_t i = inner; i < 2 * inner; ++i) {
    CodeMask m;
    m.drop_bit = drop.data();
    m.tensor_mask = em[i];
    expect += dy[i] * kernel_grads(x[i], alpha[1], sigma[0], r, true, m).da;
  }
  CHECK(da1[1] == Approx(expect).epsilon(1e-4));
}

TEST_CASE("cpq kernels: gradient of the per-code weights matches finite differences") {
  GridRange r = grid_range(3, true, GridKind::rq);
  const int n = int(r.levels());
  std::vector<float> v = {1, 0.3f, 1, 0.7f, 1, 0.5f, 1, 0.9f};
  const float alpha = 0.6f, sigma = 0.35f;
  CpqArgs a;
  a.range = r;
  a.alpha = &alpha;
  a.sigma = &sigma;
  a.mask.weight = v.data();
  for (float x : {-1.9f, -0.4f, 0.1f, 0.55f, 1.7f}) {
    float dy = 1.0f;
    std::vector<double> dw(n);
    std::vector<int32_t> group(n);
    for (int k = 0; k < n; ++k) group[k] = k;
    CpqGradOut out;
    out.dweight = dw.data();
    out.group = group.data();
    out.groups = n;
    cpq_backward(&x, &dy, 1, a, out);
    for (int k = 0; k < n; ++k) {
      std::vector<double> vp(v.begin(), v.end()), vm(v.begin(), v.end());
      const double h = 1e-3;
      vp[k] += h;
      vm[k] -= h;
      const double fd = (ref_mean(x, alpha, sigma, r, vp, alpha) - ref_mean(x, alpha, sigma, r, vm, alpha)) / (2 * h);
      INFO("x " << x << " code " << k);
      CHECK(dw[k] == Approx(fd).margin(2e-4));
    }
  }
}

// At 6+ bits the elements of one block spread over more bins than one window covers, so the
// backward walks a window around each element's own nearest code (lane_sums_local). Every
// element of a 4096-element call must get the gradient it gets alone, and that gradient must
// be the finite difference of the double-precision mean, also tens of bins outside the grid.
TEST_CASE("cpq backward at 6-8 bits: each element's own window, inside and far outside the grid (check 5)") {
  std::mt19937 rng(13);
  for (bool is_signed : {true, false}) {
    for (int b : {6, 7, 8}) {
      for (double ratio : {0.15, 1.0 / 3.0, 1.3}) {
        GridRange r = grid_range(b, is_signed);
        const int n = int(r.levels());
        const float alpha = 0.02f, sigma = float(ratio * alpha);
        const int64_t count = 4096;
        std::uniform_real_distribution<double> uin(r.qmin - 3.0, r.qmax + 3.0), uout(5, 60);
        std::vector<float> x(count), dy(count), dx(count);
        for (int64_t i = 0; i < count; ++i) {
          double code = uin(rng);
          if (i % 16 == 0) code = (i % 32 == 0) ? r.qmin - uout(rng) : r.qmax + uout(rng);  // tens of bins outside
          x[i] = float(code * alpha);
          dy[i] = float(0.5 + (i % 7) * 0.25);
        }
        CpqArgs a;
        a.range = r;
        a.alpha = &alpha;
        a.sigma = &sigma;
        double da = 0, ds = 0;
        CpqGradOut out;
        out.dx = dx.data();
        out.dalpha = &da;
        out.dsigma = &ds;
        out.alpha_direct = false;
        cpq_backward(x.data(), dy.data(), count, a, out);
        double ea = 0, es = 0, scale_a = 0, scale_s = 0;
        for (int64_t i = 0; i < count; ++i) {
          const Grads one = kernel_grads(x[i], alpha, sigma, r, false);
          INFO("bits " << b << " signed " << is_signed << " sigma/alpha " << ratio << " x/alpha " << x[i] / alpha);
          REQUIRE(dx[i] == Approx(dy[i] * one.dx).margin(1e-4 + 2e-6 * n));  // mu ~ n/2: float cancellation
          ea += dy[i] * one.da;
          es += dy[i] * one.ds;
          scale_a += std::fabs(dy[i] * one.da);
          scale_s += std::fabs(dy[i] * one.ds);
          if (i % 61 == 0) {  // against the definition
            const double xd = x[i], ad = alpha, sd = sigma;
            const double hx = 1e-4 * sd, ha = 1e-6 * ad, hs = 1e-4 * sd;  // long double: small steps are safe
            const double fx = (ref_mean(xd + hx, ad, sd, r, {}, ad) - ref_mean(xd - hx, ad, sd, r, {}, ad)) / (2 * hx);
            const double fa = (ref_mean(xd, ad + ha, sd, r, {}, ad) - ref_mean(xd, ad - ha, sd, r, {}, ad)) / (2 * ha);
            const double fs = (ref_mean(xd, ad, sd + hs, r, {}, ad) - ref_mean(xd, ad, sd - hs, r, {}, ad)) / (2 * hs);
            REQUIRE(one.dx == Approx(fx).margin(2e-4));
            REQUIRE(one.da == Approx(fa).margin(1e-4 * n));
            REQUIRE(one.ds == Approx(fs).margin(1e-4 * n));
          }
        }
        INFO("bits " << b << " signed " << is_signed << " sigma/alpha " << ratio);
        CHECK(da == Approx(ea).margin(1e-4 * scale_a));
        CHECK(ds == Approx(es).margin(1e-4 * scale_s));
      }
    }
  }
}

// The per-element-window path with per-code weights, gate groups and per-element DropBits
// masks: the block's sums equal those of the elements one at a time.
TEST_CASE("cpq backward at 6 bits with gates and masks: block sums equal per-element sums") {
  GridRange r = grid_range(6, true);
  const int n = int(r.levels());
  std::vector<float> v(n);
  std::vector<int32_t> group(n);
  std::vector<uint8_t> drop(n, 0);
  for (int k = 0; k < n; ++k) {
    const int c = r.qmin + k, level = c == 0 ? 1 : 6 - std::min(5, std::countr_zero(unsigned(c < 0 ? -c : c)));
    group[k] = level - 2;  // level 1 (code 0) has no gate
    v[k] = level == 1 ? 1.0f : 0.4f + 0.1f * float(level);
    drop[k] = level >= 5 ? uint8_t(1u << (level - 1)) : 0;
  }
  const float alpha = 0.05f, sigma = 0.02f;
  const int64_t count = 3000;
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> ux(float(r.qmin) - 8, float(r.qmax) + 8);
  std::vector<float> x(count), dy(count), dx(count);
  std::vector<uint8_t> em(count);
  for (int64_t i = 0; i < count; ++i)
    x[i] = ux(rng) * alpha, dy[i] = ux(rng) / n, em[i] = uint8_t(rng() % 4 == 0 ? 16 : 0);
  CpqArgs a;
  a.range = r;
  a.alpha = &alpha;
  a.sigma = &sigma;
  a.mask.weight = v.data();
  a.mask.drop_bit = drop.data();
  a.mask.elem_mask = em.data();
  const int groups = 5;
  std::vector<double> dw(groups), expect_w(groups, 0.0);
  double da = 0, ds = 0, expect_a = 0, expect_s = 0;
  CpqGradOut out;
  out.dx = dx.data();
  out.dalpha = &da;
  out.dsigma = &ds;
  out.dweight = dw.data();
  out.group = group.data();
  out.groups = groups;
  cpq_backward(x.data(), dy.data(), count, a, out);
  for (int64_t i = 0; i < count; ++i) {
    CpqArgs one = a;
    one.mask.elem_mask = &em[i];
    float gx = 0;
    double ga = 0, gs = 0;
    std::vector<double> gw(groups);
    CpqGradOut o = out;
    o.dx = &gx;
    o.dalpha = &ga;
    o.dsigma = &gs;
    o.dweight = gw.data();
    cpq_backward(&x[i], &dy[i], 1, one, o);
    INFO("x/alpha " << x[i] / alpha << " mask " << int(em[i]));
    REQUIRE(dx[i] == Approx(gx).margin(1e-4));
    expect_a += ga;
    expect_s += gs;
    for (int g = 0; g < groups; ++g) expect_w[g] += gw[g];
  }
  CHECK(da == Approx(expect_a).epsilon(1e-4));
  CHECK(ds == Approx(expect_s).epsilon(1e-4));
  for (int g = 0; g < groups; ++g) CHECK(dw[g] == Approx(expect_w[g]).epsilon(1e-4).margin(1e-6));
}
