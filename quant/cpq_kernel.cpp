// Fused CPU kernels of the logistic-bin categorical: CPQ forward (nearest surviving point) and
// the multi-class STE backward, one pass each, O(2^b) work per element, no 2^b-wide buffers.
#include "cpq_kernel.h"

#include <limits>

#include "../core/error.h"
#include "../core/parallel.h"

namespace lowbit {

namespace {

constexpr int64_t kItem = 4096;  // elements per reduction block (fixed: results do not depend on threads)
constexpr int kLanes = 64;       // elements processed together so the loops over them vectorise
// Boundaries more than kWindow sigmas beyond the nearest surviving one carry a relative mass
// below e^-20 = 2e-9, under float resolution: they are skipped (this keeps 8 bits cheap).
constexpr float kWindow = 20.0f;
constexpr float kTinyMass = 1e-30f;
constexpr int kMaxGroups = 16;

struct Chan {
  float alpha, s, inv_s;  // s = sigma / alpha
};

// nearbyint for |v| < 2^22 (callers clamp first): adding 1.5 * 2^23 rounds to an integer in
// the current (round-to-nearest-even) mode. std::nearbyint and std::floor may raise the
// inexact flag, which keeps GCC from vectorising them under -ftrapping-math.
inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

// The weight of code k for an element whose mask byte is mk.
inline float code_v(const CodeMask& m, int k, uint8_t mk) {
  const float w = m.weight ? m.weight[k] : 1.0f;
  return (m.drop_bit && (mk & m.drop_bit[k])) ? 0.0f : w;
}

// 0-based nearest surviving code for each element (u = x / alpha): grid_code() when that code
// survives (so the unmasked forward is the eval quantizer bit for bit), else the nearest
// survivor (the lower one on a tie).
void nearest_codes(const float* u, const uint8_t* mk, int cnt, GridRange r, const CodeMask& m, float* code) {
  const float lo = static_cast<float>(r.qmin), hi = static_cast<float>(r.qmax);
  const int n = static_cast<int>(r.levels());
#pragma omp simd
  for (int e = 0; e < cnt; ++e) {
    // clamping to integers before rounding gives clamp(nearbyint(u)), grid_code()'s value
    const float c = round_even(std::min(std::max(u[e], lo), hi)) - lo;
    code[e] = c == c ? c : 0.0f;  // NaN -> code 0 (the caller keeps NaN itself)
  }
  if (!m.any()) return;
  for (int e = 0; e < cnt; ++e) {
    if (code_v(m, static_cast<int>(code[e]), mk[e]) > 0) continue;
    float best = std::numeric_limits<float>::infinity();
    for (int k = 0; k < n; ++k) {
      const float d = std::fabs(u[e] - (lo + static_cast<float>(k)));
      if (code_v(m, k, mk[e]) > 0 && d < best) {
        best = d;
        code[e] = static_cast<float>(k);
      }
    }
  }
}

struct Item {
  int64_t channel, begin, end;
};

std::vector<Item> make_items(int64_t numel, int64_t channels) {
  LOWBIT_CHECK(channels >= 1 && numel % channels == 0, "cpq kernel", numel, " elements do not split into ",
               channels, " channels");
  const int64_t inner = numel / channels;
  std::vector<Item> items;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t b = 0; b < inner; b += kItem) items.push_back({c, c * inner + b, c * inner + std::min(b + kItem, inner)});
  return items;
}

Chan chan_of(const CpqArgs& a, int64_t c) {
  const float alpha = a.alpha[a.alpha_size == 1 ? 0 : c];
  const float sigma = a.sigma[a.sigma_size == 1 ? 0 : c];
  return {alpha, sigma / alpha, alpha / sigma};
}

void check_args(const CpqArgs& a) {
  LOWBIT_CHECK(a.range.levels() >= 1 && a.range.levels() <= 65536, "cpq kernel", "bad code range");
  LOWBIT_CHECK(a.alpha_size == 1 || a.alpha_size == a.channels, "cpq kernel", "alpha has ", a.alpha_size,
               " entries for ", a.channels, " channels");
  LOWBIT_CHECK(a.sigma_size == 1 || a.sigma_size == a.channels, "cpq kernel", "sigma has ", a.sigma_size,
               " entries for ", a.channels, " channels");
}

// Per-element state of one lane block in the backward pass.
struct Lanes {
  float z[kLanes], u[kLanes], om[kLanes], eom[kLanes], kx[kLanes];
  float tp[kLanes], vp[kLanes], R[kLanes], N[kLanes], A0[kLanes], B0[kLanes], A1[kLanes], B1[kLanes];
  uint8_t mk[kLanes];
  int32_t mki[kLanes];  // mk widened, so the loops over lanes vectorise with one element width
  int32_t kci[kLanes];  // the element's bin clamped to the grid (the centre of its own window)
  // Per code group (learned-bit gates): sum of raw masses r_k and of k r_k over surviving codes.
  float Sg[kMaxGroups][kLanes], Kg[kMaxGroups][kLanes];
  float code[kLanes];
};

// omega (distance in sigmas from x to the nearest surviving bin, 0 inside one), exp(-omega)
// and the block's bin window [k0, k1].
void lane_setup(Lanes& L, int cnt, const Chan& ch, int n, int& k0, int& k1, int& half_max) {
  const float fn = static_cast<float>(n), inv_s = ch.inv_s, s = ch.s;
  float* __restrict om = L.om;
  const float* __restrict z = L.z;
  // The bins have equal widths, so the surviving bin whose centre is nearest (L.code) also
  // has the nearest edge: omega = max(|z - code| - 1/2, 0) / s, 0 when x's own bin survives.
  const float* __restrict code = L.code;
#pragma omp simd
  for (int e = 0; e < cnt; ++e) om[e] = std::max(std::fabs(z[e] - code[e]) - 0.5f, 0.0f) * inv_s;
  float* __restrict eom = L.eom;
#pragma omp simd
  for (int e = 0; e < cnt; ++e) eom[e] = fast_exp(-om[e]);
  // The block's union window (conservative: the widest element's half-width around the
  // extreme z) and the widest per-element window. An element's own window is centred on its
  // nearest surviving code (L.code); survivors on the far side of x lie within 2 omega of
  // it, and outside the grid all survivors are on one side.
  float zmin = std::numeric_limits<float>::infinity(), zmax = -zmin, omax = 0.0f, oin = 0.0f;
#pragma omp simd reduction(min : zmin) reduction(max : zmax, omax, oin)
  for (int e = 0; e < cnt; ++e) {
    const float ze = z[e], oe = om[e];
    const float in = (ze >= -0.5f) & (ze <= fn - 0.5f) ? oe : 0.0f;
    zmin = std::min(zmin, ze);
    zmax = std::max(zmax, ze);
    omax = std::max(omax, oe);
    oin = std::max(oin, in);
  }
  const float half = std::min((omax + kWindow) * s, 2.0f * fn + 4.0f);
  const float lo = std::floor(std::max(zmin, -fn - 4.0f) + 0.5f - half) - 1.0f;
  const float hi = std::floor(std::min(zmax, 2.0f * fn + 4.0f) + 0.5f + half) + 1.0f;
  const float hmax = std::min((2.0f * oin + kWindow) * s, 2.0f * fn + 4.0f);
  k0 = static_cast<int>(std::max(lo, 0.0f));
  k1 = static_cast<int>(std::min(hi, fn - 1.0f));
  half_max = static_cast<int>(std::ceil(hmax)) + 2;
}

// One pass over the boundaries j = k0..k1+1 accumulating, per element, the (scaled) masses
// R = sum v_k r_k, N = sum k v_k r_k and the boundary sums A0 = sum P_j cA_j, B0 = sum P_j cB_j,
// A1 = sum P_j cA_j d_j, B1 = sum P_j cB_j d_j, where d_j = t_j * s, cA_j = v_{j-1}(j-1) - v_j j,
// cB_j = v_{j-1} - v_j, so that sum_j kappa_j P_j = A0 - mu B0. Bins outside the window have v 0.
void lane_sums(Lanes& L, int cnt, const Chan& ch, const CodeMask& m, int k0, int k1, const int32_t* gtab, int groups) {
  for (int e = 0; e < cnt; ++e)
    L.tp[e] = L.vp[e] = L.R[e] = L.N[e] = L.A0[e] = L.B0[e] = L.A1[e] = L.B1[e] = 0.0f;
  for (int g = 0; g < groups; ++g)
    for (int e = 0; e < cnt; ++e) L.Sg[g][e] = L.Kg[g][e] = 0.0f;
  // Plain restrict pointers: the vectoriser gives up on the struct members themselves.
  const float* __restrict z = L.z;
  const float* __restrict om = L.om;
  const float* __restrict eom = L.eom;
  const float* __restrict kx = L.kx;
  const int32_t* __restrict mki = L.mki;
  float* __restrict tp = L.tp;
  float* __restrict vp = L.vp;
  float* __restrict R = L.R;
  float* __restrict N = L.N;
  float* __restrict A0 = L.A0;
  float* __restrict B0 = L.B0;
  float* __restrict A1 = L.A1;
  float* __restrict B1 = L.B1;
  const float inv_s = ch.inv_s;
  for (int j = k0; j <= k1 + 1; ++j) {
    const bool has_bin = j <= k1;  // bin j (right of boundary j) lies in the window
    const float wj = has_bin ? (m.weight ? m.weight[j] : 1.0f) : 0.0f;
    const int32_t db = (has_bin && m.drop_bit) ? m.drop_bit[j] : 0;
    const float fj = static_cast<float>(j), fk = fj - 1.0f;
    const float keep_first = j == k0 ? 0.0f : 1.0f;
    // bin j-1's group row (raw masses of surviving codes), or a scratch row
    const int32_t gk = (gtab && j > k0) ? gtab[j - 1] : -1;
    float* __restrict sg = gk >= 0 ? L.Sg[gk] : nullptr;
    float* __restrict kg = gk >= 0 ? L.Kg[gk] : nullptr;
#pragma omp simd
    for (int e = 0; e < cnt; ++e) {
      const float d = fj - 0.5f - z[e];
      const float a = std::fabs(d) * inv_s;
      const float w = fast_exp(std::min(om[e] - a, 0.0f));
      const float q = w * eom[e];
      const float i1 = 1.0f / (1.0f + q);
      const float T = w * i1, P = T * i1;
      const float vj = (mki[e] & db) ? 0.0f : wj;
      const float vk = vp[e];
      // bin k = j-1: below x, above x, or holding x (only meaningful unscaled, then v > 0)
      const float raw = (fk < kx[e] ? T - tp[e] : (fk > kx[e] ? tp[e] - T : 1.0f - tp[e] - T)) * keep_first;
      const float r = raw * vk;
      R[e] += r;
      N[e] += fk * r;
      if (sg) {
        const float rs = vk > 0.0f ? raw : 0.0f;
        sg[e] += rs;
        kg[e] += fk * rs;
      }
      const float cA = vk * fk - vj * fj, cB = vk - vj;
      A0[e] += P * cA;
      B0[e] += P * cB;
      A1[e] += P * cA * d;
      B1[e] += P * cB * d;
      tp[e] = T;
      vp[e] = vj;
    }
  }
}

// lane_sums over each element's own window: boundaries kc_e + o for o = -W..W+1 (bins
// kc_e - W .. kc_e + W), for when the elements of a block are spread over a grid much wider
// than one window (5+ bits). Codes are looked up per lane: wtab (null: 1) and dtab (null: 0)
// are the weight and drop bit of every code, widened to 32 bits.
void lane_sums_local(Lanes& L, int cnt, const Chan& ch, int n, const float* wtab, const int32_t* dtab, int W,
                     const int32_t* gtab, int groups) {
  for (int e = 0; e < cnt; ++e)
    L.tp[e] = L.vp[e] = L.R[e] = L.N[e] = L.A0[e] = L.B0[e] = L.A1[e] = L.B1[e] = 0.0f;
  for (int g = 0; g < groups; ++g)
    for (int e = 0; e < cnt; ++e) L.Sg[g][e] = L.Kg[g][e] = 0.0f;
  float gk[kLanes], rs[kLanes];
  const float* __restrict z = L.z;
  const float* __restrict om = L.om;
  const float* __restrict eom = L.eom;
  const float* __restrict kx = L.kx;
  const int32_t* __restrict mki = L.mki;
  const int32_t* __restrict kci = L.kci;
  float* __restrict tp = L.tp;
  float* __restrict vp = L.vp;
  float* __restrict R = L.R;
  float* __restrict N = L.N;
  float* __restrict A0 = L.A0;
  float* __restrict B0 = L.B0;
  float* __restrict A1 = L.A1;
  float* __restrict B1 = L.B1;
  const float inv_s = ch.inv_s;
  for (int o = -W; o <= W + 1; ++o) {
    const float keep_first = o == -W ? 0.0f : 1.0f;
    const bool last = o == W + 1;
#pragma omp simd
    for (int e = 0; e < cnt; ++e) {
      const int32_t j = kci[e] + o;
      const bool has_bin = !last && j >= 0 && j < n;
      const int32_t js = has_bin ? j : 0;
      const float fj = static_cast<float>(j), fk = fj - 1.0f;
      const float wj = has_bin ? (wtab ? wtab[js] : 1.0f) : 0.0f;
      const float vj = (dtab && (mki[e] & dtab[js])) ? 0.0f : wj;
      const float d = fj - 0.5f - z[e];
      const float a = std::fabs(d) * inv_s;
      const float w = fast_exp(std::min(om[e] - a, 0.0f));
      const float q = w * eom[e];
      const float i1 = 1.0f / (1.0f + q);
      const float T = w * i1, P = T * i1;
      const float vk = vp[e];
      const float raw = (fk < kx[e] ? T - tp[e] : (fk > kx[e] ? tp[e] - T : 1.0f - tp[e] - T)) * keep_first;
      const float r = raw * vk;
      R[e] += r;
      N[e] += fk * r;
      if (gtab) {  // bin j-1's group, per lane
        const int32_t k = j - 1;
        gk[e] = (k >= 0 && k < n) ? static_cast<float>(gtab[k >= 0 && k < n ? k : 0]) : -1.0f;
        rs[e] = vk > 0.0f ? raw : 0.0f;
      }
      const float cA = vk * fk - vj * fj, cB = vk - vj;
      A0[e] += P * cA;
      B0[e] += P * cB;
      A1[e] += P * cA * d;
      B1[e] += P * cB * d;
      tp[e] = T;
      vp[e] = vj;
    }
    if (gtab)
      for (int g = 0; g < groups; ++g) {
        const float fg = static_cast<float>(g);
        float* __restrict sg = L.Sg[g];
        float* __restrict kg = L.Kg[g];
#pragma omp simd
        for (int e = 0; e < cnt; ++e) {
          const float r = gk[e] == fg ? rs[e] : 0.0f;
          sg[e] += r;
          kg[e] += (static_cast<float>(kci[e] + o) - 1.0f) * r;
        }
      }
  }
}

}  // namespace

void cpq_forward(const float* x, int64_t numel, const CpqArgs& a, float* y) {
  check_args(a);
  const float qmin = static_cast<float>(a.range.qmin);
  const std::vector<Item> items = make_items(numel, a.channels);
  parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t ib, int64_t ie) {
    float u[kLanes];
    uint8_t mk[kLanes];
    float code[kLanes];
    for (int64_t it = ib; it < ie; ++it) {
      const Chan ch = chan_of(a, items[it].channel);
      for (int64_t b = items[it].begin; b < items[it].end; b += kLanes) {
        const int cnt = static_cast<int>(std::min<int64_t>(kLanes, items[it].end - b));
        for (int e = 0; e < cnt; ++e) {
          u[e] = x[b + e] / ch.alpha;
          mk[e] = a.mask.elem_mask ? a.mask.elem_mask[b + e] : a.mask.tensor_mask;
        }
        nearest_codes(u, mk, cnt, a.range, a.mask, code);
        // NaN stays NaN (a diverged network should not look quantized)
        for (int e = 0; e < cnt; ++e)
          y[b + e] = std::isnan(u[e]) ? u[e] : (code[e] + qmin) * ch.alpha;
      }
    }
  });
}

void cpq_backward(const float* x, const float* dy, int64_t numel, const CpqArgs& a, const CpqGradOut& out) {
  check_args(a);
  const int n = static_cast<int>(a.range.levels());
  const float qmin = static_cast<float>(a.range.qmin);
  const std::vector<Item> items = make_items(numel, a.channels);
  LOWBIT_CHECK(!out.dweight || (out.group && out.groups >= 1 && out.groups <= kMaxGroups), "cpq kernel",
               "weight gradients need a code group table of at most ", kMaxGroups, " groups");
  const size_t ni = items.size(), nw = out.dweight ? static_cast<size_t>(out.groups) : 0;
  const int32_t* gtab = out.dweight ? out.group : nullptr;
  const int groups = out.dweight ? out.groups : 0;
  // Per item: dalpha, dsigma, then the per-code weight gradients.
  const size_t stride = 2 + nw;
  std::vector<double> part(ni * stride, 0.0);
  std::vector<int32_t> dtab;
  if (a.mask.drop_bit) dtab.assign(a.mask.drop_bit, a.mask.drop_bit + n);
  parallel_for(static_cast<int64_t>(ni), 1, [&](int64_t ib, int64_t ie) {
    Lanes L;
    for (int64_t it = ib; it < ie; ++it) {
      const Chan ch = chan_of(a, items[it].channel);
      double* acc = &part[static_cast<size_t>(it) * stride];
      for (int64_t b = items[it].begin; b < items[it].end; b += kLanes) {
        const int cnt = static_cast<int>(std::min<int64_t>(kLanes, items[it].end - b));
        const float fn = static_cast<float>(n);
#pragma omp simd
        for (int e = 0; e < cnt; ++e) {
          L.u[e] = x[b + e] / ch.alpha;
          L.z[e] = L.u[e] - qmin;
          // the bin holding x (either one on a boundary), clamped to [-1, n]; NaN -> -1
          const float kx = round_even(std::min(std::max(L.z[e], -2.0f), fn + 1.0f));
          L.kx[e] = kx == kx ? std::min(std::max(kx, -1.0f), fn) : -1.0f;
        }
        for (int e = 0; e < cnt; ++e) {
          L.mk[e] = a.mask.elem_mask ? a.mask.elem_mask[b + e] : a.mask.tensor_mask;
          L.mki[e] = L.mk[e];
        }
        int k0 = 0, k1 = n - 1, half = n;
        nearest_codes(L.u, L.mk, cnt, a.range, a.mask, L.code);
        lane_setup(L, cnt, ch, n, k0, k1, half);
        // per-element windows when they are much narrower than the block's union (5+ bits);
        // the per-code weight gradients (learned bits) walk the union window
        if (2 * half + 2 < (k1 - k0 + 2) / 2)
          lane_sums_local(L, cnt, ch, n, a.mask.weight, dtab.empty() ? nullptr : dtab.data(), half, gtab, groups);
        else
          lane_sums(L, cnt, ch, a.mask, k0, k1, gtab, groups);
        float gx[kLanes], ga[kLanes], gs[kLanes];
        const float inv_sc = 1.0f / ch.s;
#pragma omp simd
        for (int e = 0; e < cnt; ++e) {
          // dm/dx = -D0/(sR), dm/dalpha = (D1 + u D0)/(sR), dm/dsigma = -D1/(s^2 R)
          const float R = L.R[e];
          const bool ok = R > kTinyMass && R <= std::numeric_limits<float>::max();  // also rejects NaN
          const float Rs = ok ? R : 1.0f;
          const float mu = L.N[e] / Rs;
          const float d0 = L.A0[e] - mu * L.B0[e], d1 = L.A1[e] - mu * L.B1[e];
          const float inv = ok ? inv_sc / Rs : 0.0f;
          gx[e] = -d0 * inv;
          ga[e] = (d1 + L.u[e] * d0) * inv;
          gs[e] = -d1 * inv * inv_sc;
        }
        if (out.dx)
          for (int e = 0; e < cnt; ++e) out.dx[b + e] = dy[b + e] * gx[e];
        if (out.alpha_direct)
          for (int e = 0; e < cnt; ++e) ga[e] += L.code[e] + qmin;
        double da = 0, ds = 0;
        for (int e = 0; e < cnt; ++e) {
          da += static_cast<double>(dy[b + e] * ga[e]);
          ds += static_cast<double>(dy[b + e] * gs[e]);
        }
        acc[0] += da;
        acc[1] += ds;
        // dweight_g += sum_e dy_e alpha (K_g - mu S_g) / R
        for (int g = 0; g < groups; ++g) {
          double sum = 0;
          for (int e = 0; e < cnt; ++e) {
            const float R = L.R[e];
            if (!(R > kTinyMass && R <= std::numeric_limits<float>::max())) continue;
            sum += static_cast<double>(dy[b + e] * ch.alpha * (L.Kg[g][e] - L.N[e] / R * L.Sg[g][e]) / R);
          }
          acc[2 + g] += sum;
        }
      }
    }
  });
  if (out.dalpha) std::fill(out.dalpha, out.dalpha + a.alpha_size, 0.0);
  if (out.dsigma) std::fill(out.dsigma, out.dsigma + a.sigma_size, 0.0);
  if (out.dweight) std::fill(out.dweight, out.dweight + groups, 0.0);
  for (size_t it = 0; it < ni; ++it) {
    const double* acc = &part[it * stride];
    const int64_t c = items[it].channel;
    if (out.dalpha) out.dalpha[a.alpha_size == 1 ? 0 : c] += acc[0];
    if (out.dsigma) out.dsigma[a.sigma_size == 1 ? 0 : c] += acc[1];
    for (size_t k = 0; k < nw; ++k) out.dweight[k] += acc[2 + k];
  }
}

float bin_masses(float z, float inv_s, int k0, int k1, float* r, float* P) {
  const float kx = std::fmin(std::fmax(std::floor(z + 0.5f), static_cast<float>(k0) - 1.0f), static_cast<float>(k1) + 1.0f);
  const float lo = (static_cast<float>(k0) - 0.5f - z) * inv_s, hi = (z - static_cast<float>(k1) - 0.5f) * inv_s;
  const float om = lo > 0 ? lo : (hi > 0 ? hi : 0.0f), eom = fast_exp(-om);
  float tp = 0, R = 0;
  for (int j = k0; j <= k1 + 1; ++j) {
    const float a = std::fabs(static_cast<float>(j) - 0.5f - z) * inv_s;
    const float w = fast_exp(std::min(om - a, 0.0f));
    const float i1 = 1.0f / (1.0f + w * eom);
    const float T = w * i1;
    P[j - k0] = T * i1;
    if (j > k0) {
      const float fk = static_cast<float>(j - 1);
      const float rk = std::max(fk < kx ? T - tp : (fk > kx ? tp - T : 1.0f - tp - T), 0.0f);
      r[j - 1 - k0] = rk;
      R += rk;
    }
    tp = T;
  }
  return std::isfinite(R) ? R : 0.0f;
}

void categorical_probs(float x, float alpha, float sigma, GridRange range, const float* v, float* pi) {
  const int n = static_cast<int>(range.levels());
  CodeMask m;
  m.weight = v;
  Lanes L;
  L.u[0] = x / alpha;
  L.z[0] = L.u[0] - static_cast<float>(range.qmin);
  const float kx0 = std::floor(L.z[0] + 0.5f);
  L.kx[0] = kx0 >= -1.0f ? std::min(kx0, static_cast<float>(n)) : -1.0f;
  L.mk[0] = 0;
  const Chan ch{alpha, sigma / alpha, alpha / sigma};
  int k0 = 0, k1 = n - 1, half = n;
  nearest_codes(L.u, L.mk, 1, range, m, L.code);
  lane_setup(L, 1, ch, n, k0, k1, half);
  // The same masses as lane_sums, kept per bin (full grid: this is the reference).
  float tp = 0, R = 0;
  for (int j = 0; j <= n; ++j) {
    const float a = std::fabs(static_cast<float>(j) - 0.5f - L.z[0]) * ch.inv_s;
    const float w = fast_exp(std::min(L.om[0] - a, 0.0f));
    const float T = w / (1.0f + w * L.eom[0]);
    if (j > 0) {
      const float fk = static_cast<float>(j - 1);
      float r = fk < L.kx[0] ? T - tp : (fk > L.kx[0] ? tp - T : 1.0f - tp - T);
      r *= v ? v[j - 1] : 1.0f;
      pi[j - 1] = std::max(r, 0.0f);
      R += pi[j - 1];
    }
    tp = T;
  }
  if (R > kTinyMass && std::isfinite(R)) {
    for (int k = 0; k < n; ++k) pi[k] /= R;
    return;
  }
  for (int k = 0; k < n; ++k) pi[k] = static_cast<float>(k) == L.code[0] ? 1.0f : 0.0f;
}

}  // namespace lowbit
