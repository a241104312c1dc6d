// CPU kernels of RQ's concrete sample and gradient (quant/rq.h has the formulas). The pass is
// rq_element (quant/kernels/logistic_math.h, the CUDA kernel's per-element code) run kLanes
// elements at a time with the loops over bins outside the loops over elements, so each
// per-bin step vectorises across elements; the operations and their order are rq_element's,
// so the two give the same numbers (tests/quant/test_rq_lanes.cpp holds them to it).
// This file is compiled with -fno-trapping-math (CMakeLists.txt): under the default GCC will not
// execute a float operation that one arm of a conditional guards (it could raise a flag) for
// every lane without masked vector arithmetic (AVX2), so none of these loops would vectorise
// there. The values computed do not change.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../../core/error.h"
#include "../../core/parallel.h"
#include "../kernels/cpq.h"

namespace lowbit::cpu {

namespace {
constexpr int64_t kItem = 4096;  // elements per reduction block (fixed: independent of threads)
constexpr int kLanes = 64;

struct Setup {
  RqElementSetup e;
  int bins = 1;  // bins per element: all levels, or 2 * window + 1
  uint64_t blocks = 1;  // Philox blocks per element
};

// Per-lane state of one block of elements; the per-bin arrays are [bin offset][lane].
struct Lanes {
  float u[kLanes], z[kLanes], cn[kLanes], k0[kLanes], k1[kLanes], kx[kLanes], om[kLanes], eom[kLanes];
  float R[kLanes], amax[kLanes], khard[kLanes], zc[kLanes], xs[kLanes], dy[kLanes];
  std::vector<float> r, P, a;
  std::vector<uint32_t> word, fill;
  explicit Lanes(const Setup& s)
      : r(static_cast<size_t>(s.bins) * kLanes),
        P(static_cast<size_t>(s.bins + 1) * kLanes),
        a(static_cast<size_t>(s.bins) * kLanes),
        word(static_cast<size_t>(s.bins) * kLanes),
        fill(s.e.window > 0 ? 0 : static_cast<size_t>(s.blocks) * 4 * kLanes) {}
};

// The nearest point, the element's window [k0, k1] and bin_masses() of every lane.
void lane_masses(Lanes& L, const float* x, int cnt, float alpha, float inv_s, const Setup& s) {
  const float qmin = s.e.qmin, qmax = s.e.qmax, W = static_cast<float>(s.e.window);
  const float last = static_cast<float>(s.e.levels - 1);
  const bool windowed = s.e.window > 0;
  float* __restrict u = L.u;
  float* __restrict z = L.z;
  float* __restrict cn = L.cn;
  float* __restrict k0 = L.k0;
  float* __restrict k1 = L.k1;
  float* __restrict kx = L.kx;
  float* __restrict om = L.om;
  float* __restrict eom = L.eom;
#pragma omp simd
  for (int e = 0; e < cnt; ++e) {
    const float ue = x[e] / alpha, ze = ue - qmin;
    u[e] = ue;
    z[e] = ze;
    // clamp(rint(u)) with qmin for NaN, as rq_element's fminf/fmaxf
    const float cl = std::min(std::max(ue, qmin), qmax);
    const float ce = round_even(ue != ue ? qmin : cl);
    cn[e] = ce;
    const float kc = ce - qmin;
    const float k0w = std::max(kc - W, 0.0f), k1w = std::min(kc + W, last);
    const float k0e = windowed ? k0w : 0.0f, k1e = windowed ? k1w : last;
    k0[e] = k0e;
    k1[e] = k1e;
    // floor(z + 1/2) clamped to [k0 - 1, k1 + 1] (NaN: k0 - 1); the bounds are integers, so
    // flooring after the clamp is the same
    const float v = ze + 0.5f, vlo = k0e - 1.0f, vhi = k1e + 1.0f;
    const float vcl = std::min(std::max(v, vlo), vhi);
    const float vc = v != v ? vlo : vcl;
    const float rv = round_even(vc), rv1 = rv - 1.0f;
    kx[e] = rv > vc ? rv1 : rv;
    const float lo = (k0e - 0.5f - ze) * inv_s, hi = (ze - k1e - 0.5f) * inv_s;
    const bool pl = lo > 0, ph = hi > 0;
    const float oe = pl ? lo : (ph ? hi : 0.0f);
    om[e] = oe;
    eom[e] = fast_exp(-oe);
  }
  float tp[kLanes] = {}, R[kLanes] = {}, scratch[kLanes];
  for (int o = 0; o <= s.bins; ++o) {
    float* __restrict P = L.P.data() + static_cast<size_t>(o) * kLanes;
    float* __restrict r = o > 0 ? L.r.data() + static_cast<size_t>(o - 1) * kLanes : scratch;
    const bool has_bin = o > 0;  // bin j-1 (left of boundary j) lies in the block's range
    const float fo = static_cast<float>(o);
#pragma omp simd
    for (int e = 0; e < cnt; ++e) {
      const float j = k0[e] + fo;
      const float a = std::fabs(j - 0.5f - z[e]) * inv_s;
      const float w = tail_exp(om[e] - a);
      const float i1 = 1.0f / (1.0f + w * eom[e]);
      const float T = w * i1, Pj = T * i1;
      P[e] = j <= k1[e] + 1.0f ? Pj : 0.0f;
      const float fk = j - 1.0f, t = tp[e];
      const float below = T - t, above = t - T, inside = 1.0f - t - T;
      const bool lt = fk < kx[e], gt = fk > kx[e];
      const float v = lt ? below : (gt ? above : inside);
      const bool keep = has_bin & (fk <= k1[e]) & (v > 0.0f);  // fmaxf(v, 0): NaN -> 0
      const float rk = keep ? v : 0.0f;
      r[e] = rk;
      R[e] += rk;
      tp[e] = T;
    }
  }
  for (int e = 0; e < cnt; ++e) L.R[e] = std::isfinite(R[e]) ? R[e] : 0.0f;
}

// The Philox word of every lane's bins: level k uses word k % 4 of block k / 4 of its element.
void lane_words(Lanes& L, int64_t first_elem, int cnt, const RqArgs& a, const Setup& s) {
  const uint64_t nb = s.blocks;
  if (s.e.window == 0) {  // every level: one fill for the block's elements
    a.gen.fill(a.base + static_cast<uint64_t>(first_elem) * nb, static_cast<int64_t>(nb) * cnt, L.fill.data());
    for (int k = 0; k < s.bins; ++k)
      for (int e = 0; e < cnt; ++e)
        L.word[static_cast<size_t>(k) * kLanes + e] = L.fill[static_cast<size_t>(e) * nb * 4 + k];
    return;
  }
  for (int e = 0; e < cnt; ++e) {  // the window's blocks only (8 bits: 64 blocks, a few used)
    const uint64_t first = a.base + static_cast<uint64_t>(first_elem + e) * nb;
    const int k0 = static_cast<int>(L.k0[e]), k1 = static_cast<int>(L.k1[e]);
    PhiloxBlock blk{};
    for (int k = k0; k <= k1; ++k) {
      if (k == k0 || k % 4 == 0) blk = a.gen.block(first + static_cast<uint64_t>(k / 4));
      L.word[static_cast<size_t>(k - k0) * kLanes + e] = blk[static_cast<size_t>(k % 4)];
    }
  }
}

// The Gumbel-max sample and the concrete relaxation: a_k, z_k (in L.a), the hard code, sum z_k c_k.
void lane_sample(Lanes& L, int cnt, float alpha, const Setup& s) {
  const float qmin = s.e.qmin, inv_lam = 1.0f / s.e.lam;
  const float* __restrict R = L.R;
  const float* __restrict k0 = L.k0;
  const float* __restrict k1 = L.k1;
  float* __restrict amax = L.amax;
  float* __restrict khard = L.khard;
  float inv_R[kLanes], zs[kLanes] = {}, zc[kLanes] = {};
  for (int e = 0; e < cnt; ++e) {
    inv_R[e] = 1.0f / R[e];
    amax[e] = -INFINITY;
    khard[e] = L.cn[e] - qmin;
  }
  for (int o = 0; o < s.bins; ++o) {
    const float* __restrict r = L.r.data() + static_cast<size_t>(o) * kLanes;
    const uint32_t* __restrict wd = L.word.data() + static_cast<size_t>(o) * kLanes;
    float* __restrict av = L.a.data() + static_cast<size_t>(o) * kLanes;
    const float fo = static_cast<float>(o);
#pragma omp simd
    for (int e = 0; e < cnt; ++e) {
      const float k = k0[e] + fo;
      const float pi = r[e] * inv_R[e];
      const float a = fast_log(pi > kRqTinyMass ? pi : kRqTinyMass) + gumbel_of_word(wd[e]);
      const bool in = k <= k1[e];
      av[e] = in ? a : -INFINITY;
      const float am = amax[e], kh = khard[e];
      const bool top = in & (a > am);
      amax[e] = top ? a : am;
      khard[e] = top ? k : kh;
    }
  }
  for (int o = 0; o < s.bins; ++o) {
    float* __restrict av = L.a.data() + static_cast<size_t>(o) * kLanes;
    const float fo = static_cast<float>(o);
#pragma omp simd
    for (int e = 0; e < cnt; ++e) {
      const float ev = fast_exp((av[e] - amax[e]) * inv_lam);
      const float v = k0[e] + fo <= k1[e] ? ev : 0.0f;
      av[e] = v;
      zs[e] += v;
    }
  }
  for (int e = 0; e < cnt; ++e) zs[e] = 1.0f / zs[e];
  for (int o = 0; o < s.bins; ++o) {
    float* __restrict av = L.a.data() + static_cast<size_t>(o) * kLanes;
    const float fo = static_cast<float>(o);
#pragma omp simd
    for (int e = 0; e < cnt; ++e) {
      av[e] *= zs[e];  // z_k
      zc[e] += av[e] * ((k0[e] + fo) + qmin);
    }
  }
  for (int e = 0; e < cnt; ++e) {
    L.zc[e] = zc[e];
    L.xs[e] = alpha * zc[e];
  }
}

// rho_j = gamma_{j-1}/r_{j-1} - gamma_j/r_j over the boundaries, then d/dx, d/dalpha, d/dsigma.
// Not inlined: inside rq_run's loop GCC threads its selects into branches and stops vectorising it.
[[gnu::noinline]] void lane_grad(Lanes& L, int cnt, float alpha, float sigma, const Setup& s, float* dx, float* da,
                                 float* ds) {
  const float qmin = s.e.qmin, inv_lam = 1.0f / s.e.lam, sg = sigma / alpha;
  const float* __restrict z = L.z;
  const float* __restrict k0 = L.k0;
  const float* __restrict k1 = L.k1;
  const float* __restrict R = L.R;
  const float* __restrict xs = L.xs;
  const float* __restrict dy = L.dy;
  float s0[kLanes] = {}, s1[kLanes] = {}, prev[kLanes] = {};
  const float none[kLanes] = {};  // r and z past the last bin: r = 0 fails the mass test below
  for (int o = 0; o <= s.bins; ++o) {
    const bool has_bin = o < s.bins;
    const float* __restrict r = has_bin ? L.r.data() + static_cast<size_t>(o) * kLanes : none;
    const float* __restrict zk = has_bin ? L.a.data() + static_cast<size_t>(o) * kLanes : none;
    const float* __restrict P = L.P.data() + static_cast<size_t>(o) * kLanes;
    const float fo = static_cast<float>(o);
#pragma omp simd
    for (int e = 0; e < cnt; ++e) {
      const float j = k0[e] + fo;
      const float rk = r[e];
      const float g = dy[e] * zk[e] * (alpha * (j + qmin) - xs[e]) * inv_lam;
      const float q = g / rk;
      const bool use = (j <= k1[e]) & (rk > kRqTinyMass * R[e]);
      const float cur = use ? q : 0.0f;
      const float rho = prev[e] - cur, d = j - 0.5f - z[e];
      s0[e] += rho * P[e];
      s1[e] += rho * P[e] * d;
      prev[e] = cur;
    }
  }
  for (int e = 0; e < cnt; ++e) {
    dx[e] = -s0[e] / sigma;
    da[e] = (s1[e] + L.u[e] * s0[e]) / sigma + dy[e] * L.zc[e];
    ds[e] = -s1[e] / (sg * sigma);
  }
}

// One pass over the tensor: y (forward) or the gradients (backward: dy given), the alpha/sigma
// sums taken per item in element order and added in item order.
void rq_run(const Tensor& x_, const RqArgs& a, const float* dy, float* y, float* dx, std::vector<double>* da,
            std::vector<double>* ds) {
  const int64_t n = x_.numel();
  const int64_t C = std::max(a.alpha_size, a.sigma_size);
  LOWBIT_CHECK(C >= 1 && n % C == 0, "rq kernel", n, " elements do not split into ", C, " channels");
  const int64_t inner = n / C;
  Setup s;
  s.e = rq_element_setup(a);
  s.bins = a.window > 0 ? std::min(2 * a.window + 1, s.e.levels) : s.e.levels;
  s.blocks = static_cast<uint64_t>((s.e.levels + 3) / 4);
  const float* px = x_.data<float>();
  struct Item {
    int64_t c, b, e;
  };
  std::vector<Item> items;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t b = 0; b < inner; b += kItem)
      items.push_back({c, c * inner + b, c * inner + std::min(b + kItem, inner)});
  std::vector<double> part(items.size() * 2, 0.0);
  parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t ib, int64_t ie) {
    Lanes L(s);
    float gx[kLanes], ga[kLanes], gs[kLanes];
    for (int64_t it = ib; it < ie; ++it) {
      const int64_t c = items[it].c;
      const float alpha = a.alpha[a.alpha_size == 1 ? 0 : c], sigma = a.sigma[a.sigma_size == 1 ? 0 : c];
      const float inv_s = alpha / sigma;
      double pa = 0, ps = 0;
      for (int64_t i = items[it].b; i < items[it].e; i += kLanes) {
        const int cnt = static_cast<int>(std::min<int64_t>(kLanes, items[it].e - i));
        lane_masses(L, px + i, cnt, alpha, inv_s, s);
        lane_words(L, i, cnt, a, s);
        lane_sample(L, cnt, alpha, s);
        const float qmin = s.e.qmin;
        if (y)
          for (int e = 0; e < cnt; ++e) {
            const bool dead = !(L.R[e] > kRqTinyMass);  // every mass underflowed: the nearest point
            const bool nan_u = L.u[e] != L.u[e];
            y[i + e] = dead ? (nan_u ? L.u[e] : L.cn[e] * alpha)
                            : (s.e.straight_through ? (L.khard[e] + qmin) * alpha : L.xs[e]);
          }
        if (!dy) continue;
        for (int e = 0; e < cnt; ++e) L.dy[e] = dy[i + e];
        lane_grad(L, cnt, alpha, sigma, s, gx, ga, gs);
        for (int e = 0; e < cnt; ++e) {
          if (!(L.R[e] > kRqTinyMass)) {  // no gradient but alpha's (a NaN input shows there)
            gx[e] = gs[e] = 0.0f;
            ga[e] = L.dy[e] * (L.u[e] != L.u[e] ? L.u[e] : L.cn[e]);
          }
          if (dx) dx[i + e] = gx[e];
          pa += static_cast<double>(ga[e]);
          ps += static_cast<double>(gs[e]);
        }
      }
      part[2 * static_cast<size_t>(it)] = pa;
      part[2 * static_cast<size_t>(it) + 1] = ps;
    }
  });
  for (size_t it = 0; it < items.size(); ++it) {
    if (da) (*da)[da->size() == 1 ? 0 : static_cast<size_t>(items[it].c)] += part[2 * it];
    if (ds) (*ds)[ds->size() == 1 ? 0 : static_cast<size_t>(items[it].c)] += part[2 * it + 1];
  }
}
}  // namespace

void rq_forward(const Tensor& x, const RqArgs& a, Tensor& y) {
  LOWBIT_CHECK(a.range.levels() <= kRqMaxLevels, "rq_concrete", "supports up to 8 bits");
  rq_run(x, a, nullptr, y.data<float>(), nullptr, nullptr, nullptr);
}

void rq_backward(const Tensor& x, const Tensor& dy, const RqArgs& a, Tensor& dx, std::vector<double>& dalpha,
                 std::vector<double>& dsigma) {
  rq_run(x, a, dy.data<float>(), nullptr, dx.data<float>(), &dalpha, &dsigma);
}

}  // namespace lowbit::cpu
