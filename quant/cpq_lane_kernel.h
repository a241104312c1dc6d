// Internal to quant/cpq_kernel.cpp: the per-block ("lane") passes of the fused CPQ kernels.
// Elements are processed kLanes at a time with the loop over grid boundaries outside the
// loop over elements, so the per-boundary work vectorises; all state lives in Lanes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../core/error.h"
#include "cpq_kernel.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace lowbit::cpq_lanes {

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

// The weight of code k for an element whose mask byte is mk.
inline float code_v(const CodeMask& m, int k, uint8_t mk) {
  const float w = m.weight ? m.weight[k] : 1.0f;
  return (m.drop_bit && (mk & m.drop_bit[k])) ? 0.0f : w;
}

// 0-based nearest surviving code for each element (u = x / alpha): grid_code() when that code
// survives (so the unmasked forward is the eval quantizer bit for bit), else the nearest
// survivor (the lower one on a tie).
inline void nearest_codes(const float* u, const uint8_t* mk, int cnt, GridRange r, const CodeMask& m, float* code) {
  const float lo = static_cast<float>(r.qmin), hi = static_cast<float>(r.qmax);
  const int n = static_cast<int>(r.levels());
#pragma omp simd
  for (int e = 0; e < cnt; ++e) {
    // clamping to integers before rounding gives clamp(nearbyint(u)), grid_code()'s value
    const float c = round_even(logistic_detail::clampf(u[e], lo, hi)) - lo;
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

inline std::vector<Item> make_items(int64_t numel, int64_t channels) {
  LOWBIT_CHECK(channels >= 1 && numel % channels == 0, "cpq kernel", numel, " elements do not split into ", channels,
               " channels");
  const int64_t inner = numel / channels;
  std::vector<Item> items;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t b = 0; b < inner; b += kItem)
      items.push_back({c, c * inner + b, c * inner + std::min(b + kItem, inner)});
  return items;
}

inline Chan chan_of(const CpqArgs& a, int64_t c) {
  const float alpha = a.alpha[a.alpha_size == 1 ? 0 : c];
  const float sigma = a.sigma[a.sigma_size == 1 ? 0 : c];
  return {alpha, sigma / alpha, alpha / sigma};
}

inline void check_args(const CpqArgs& a) {
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
  int32_t kci[kLanes];  // the element's nearest surviving code (0-based): the centre of its own window
  // Per code group (learned-bit gates): sum of raw masses r_k and of k r_k over surviving codes.
  float Sg[kMaxGroups][kLanes], Kg[kMaxGroups][kLanes];
  float code[kLanes];
};

// omega (distance in sigmas from x to the nearest surviving bin, 0 inside one), exp(-omega)
// and the block's bin window [k0, k1].
inline void lane_setup(Lanes& L, int cnt, const Chan& ch, int n, int& k0, int& k1, int& half_max) {
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
// R = sum v_k r_k, N = sum k' v_k r_k and the boundary sums A0 = sum P_j cA_j, B0 = sum P_j cB_j,
// A1 = sum P_j cA_j d_j, B1 = sum P_j cB_j d_j, where d_j = t_j * s, cA_j = v_{j-1}(j-1)' - v_j j',
// cB_j = v_{j-1} - v_j, so that sum_j kappa_j P_j = A0 - mu' B0 (mu' = N / R). Bins outside the
// window have v 0. Codes are taken relative to the element's nearest surviving code (k' = k -
// L.code): far outside the grid mu sits within a hair of the end code, and A0 - mu B0 in
// absolute codes (each of size n P) lost the difference to float rounding (dm/dsigma off by
// tens of percent 40 bins past an 8-bit grid).
inline void lane_sums(Lanes& L, int cnt, const Chan& ch, const CodeMask& m, int k0, int k1, const int32_t* gtab,
                      int groups) {
  for (int e = 0; e < cnt; ++e) L.tp[e] = L.vp[e] = L.R[e] = L.N[e] = L.A0[e] = L.B0[e] = L.A1[e] = L.B1[e] = 0.0f;
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
  const float* __restrict kc = L.code;
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
      const float w = tail_exp(om[e] - a);
      const float q = w * eom[e];
      const float i1 = 1.0f / (1.0f + q);
      const float T = w * i1, P = T * i1;
      const float vj = (mki[e] & db) ? 0.0f : wj;
      const float vk = vp[e];
      // bin k = j-1: below x, above x, or holding x (only meaningful unscaled, then v > 0)
      const float raw = (fk < kx[e] ? T - tp[e] : (fk > kx[e] ? tp[e] - T : 1.0f - tp[e] - T)) * keep_first;
      const float r = raw * vk;
      const float fkc = fk - kc[e], fjc = fj - kc[e];  // codes relative to the nearest one
      R[e] += r;
      N[e] += fkc * r;
      if (sg) {
        const float rs = vk > 0.0f ? raw : 0.0f;
        sg[e] += rs;
        kg[e] += fkc * rs;
      }
      const float cA = vk * fkc - vj * fjc, cB = vk - vj;
      A0[e] += P * cA;
      B0[e] += P * cB;
      A1[e] += P * cA * d;
      B1[e] += P * cB * d;
      tp[e] = T;
      vp[e] = vj;
    }
  }
}

// lane_sums for the common case, no mask and no groups (every v is 1 inside the window),
// written with GCC vector types so the per-element sums stay in registers across the
// boundary loop (the array form loads and stores them at every boundary).
// One vector register's width: 16 floats with AVX-512, else 8 (a 16-float type would be split
// into register pairs, and its 14 live values spill from AVX2's 16 registers).
#ifdef __AVX512F__
constexpr int kVec = 16;
#else
constexpr int kVec = 8;
#endif
using VecF = float __attribute__((vector_size(4 * kVec)));
using VecI = int32_t __attribute__((vector_size(4 * kVec)));

inline VecF vec_load(const float* p) {
  VecF v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void vec_store(float* p, VecF v) { __builtin_memcpy(p, &v, sizeof(v)); }

// fast_exp (logistic_math.h) on kVec lanes.
inline VecF vec_exp(VecF x) {
  const VecF lo = VecF{} - 87.0f, hi = VecF{} + 88.0f, zero = VecF{};
  VecF xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  const VecF t = xc * 1.44269504088896341f + 12582912.0f;
  const VecF n = t - 12582912.0f;
  const VecF r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  VecF p = zero + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const VecI bits = (__builtin_bit_cast(VecI, t) - 0x4B400000 + 127) << 23;
  return x < lo ? zero : p * __builtin_bit_cast(VecF, bits);
}

// 1 / x for x in [1, 2]: AVX-512's 14-bit reciprocal and one Newton step (~1 ulp) where the
// target has it (vdivps costs ~10 cycles per vector there), a division elsewhere.
inline VecF vec_recip(VecF x) {
#ifdef __AVX512F__
  // The zero-masked form: GCC 12 warns about the unmasked one's undefined pass-through operand.
  const VecF y = reinterpret_cast<VecF>(_mm512_maskz_rcp14_ps(0xFFFF, reinterpret_cast<__m512>(x)));
  return y * (2.0f - x * y);
#else
  return 1.0f / x;
#endif
}

// When every boundary of the window is within 80 sigmas of x, w_j = exp(omega - |t_j|) is
// computed by recurrence instead of one exp per boundary: on each side of x |t_j| moves by
// alpha/sigma per boundary, so w_j = wa E^(j-k0) above x and wb E^-(j-k0) below it
// (E = exp(-alpha/sigma)), with wa, wb taken at k0; the bound keeps both finite and normal.
inline void lane_sums_plain(Lanes& L, int cnt, const Chan& ch, int k0, int k1) {
  const VecF zero = VecF{}, one = zero + 1.0f;
  const bool recur = static_cast<float>(k1 - k0 + 2) * ch.inv_s < 80.0f;
  const float E = fast_exp(-ch.inv_s), invE = 1.0f / E;
  for (int g = 0; g < cnt; g += kVec) {
    const VecF z = vec_load(L.z + g), om = vec_load(L.om + g), eom = vec_load(L.eom + g), kx = vec_load(L.kx + g);
    const VecF kc = vec_load(L.code + g);
    VecF tp = zero, R = zero, N = zero, A0 = zero, B0 = zero, A1 = zero, B1 = zero;
    // at j = k0: |t| = (k0 - 1/2 - z)/s as seen from below x (wa) and (z - k0 + 1/2)/s (wb)
    const VecF d0 = (zero + (static_cast<float>(k0) - 0.5f)) - z;
    const VecF ea = om - d0 * ch.inv_s, eb = om + d0 * ch.inv_s;
    // Inside the grid omega = 0 and |ea|, |eb| < 80 by the bound; outside it one of the two is
    // never selected and may be large: capped so it stays finite.
    const VecF cap = zero + 80.0f;
    VecF wa = recur ? vec_exp(ea > cap ? cap : ea) : zero;
    VecF wb = recur ? vec_exp(eb > cap ? cap : eb) : zero;
    float vk = 0.0f;  // v of bin j-1: 1 inside the window
    for (int j = k0; j <= k1 + 1; ++j) {
      const float vj = j <= k1 ? 1.0f : 0.0f, fj = static_cast<float>(j), fk = fj - 1.0f;
      const VecF d = (zero + (fj - 0.5f)) - z;
      const VecF fjv = zero + fj;
      VecF w;
      if (recur) {
        w = fjv > kx ? wa : wb;
        wa *= E;
        wb *= invE;
      } else {
        const VecF a = (d < zero ? -d : d) * ch.inv_s;
        const VecF e = om - a;
        w = e < kTailCut ? zero : vec_exp(e < zero ? e : zero);
      }
      const VecF i1 = vec_recip(one + w * eom);
      const VecF T = w * i1, P = T * i1;
      const VecF fkv = zero + fk;
      const VecF r = (fkv < kx ? T - tp : (fkv > kx ? tp - T : one - tp - T)) * (j == k0 ? 0.0f : vk);
      const VecF fkc = fkv - kc;
      R += r;
      N += fkc * r;
      const VecF cA = vk * fkc - vj * (fkc + 1.0f);
      const float cB = vk - vj;
      A0 += P * cA;
      B0 += P * cB;
      A1 += (P * cA) * d;
      B1 += (P * cB) * d;
      tp = T;
      vk = vj;
    }
    vec_store(L.R + g, R);
    vec_store(L.N + g, N);
    vec_store(L.A0 + g, A0);
    vec_store(L.B0 + g, B0);
    vec_store(L.A1 + g, A1);
    vec_store(L.B1 + g, B1);
  }
}

// lane_sums over each element's own window: boundaries kc_e + o for o = -W..W+1 (bins
// kc_e - W .. kc_e + W), for when the elements of a block are spread over a grid much wider
// than one window (5+ bits). Codes are looked up per lane: wtab and dtab are the weight and
// drop bit of every code (1 and 0 without a mask), the bits widened to 32.
template <bool kGroups>
inline void lane_sums_local(Lanes& L, int cnt, const Chan& ch, int n, const float* wtab, const int32_t* dtab, int W,
                            const int32_t* gtab, int groups) {
  for (int e = 0; e < cnt; ++e) L.tp[e] = L.vp[e] = L.R[e] = L.N[e] = L.A0[e] = L.B0[e] = L.A1[e] = L.B1[e] = 0.0f;
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
      const bool has_bin = (!last) & (j >= 0) & (j < n);
      const int32_t js = std::min(std::max(j, 0), n - 1);
      const float fj = static_cast<float>(j), fk = fj - 1.0f;
      const float wj = has_bin ? wtab[js] : 0.0f;
      const float vj = (mki[e] & dtab[js]) ? 0.0f : wj;
      const float d = fj - 0.5f - z[e];
      const float a = std::fabs(d) * inv_s;
      const float w = tail_exp(om[e] - a);
      const float q = w * eom[e];
      const float i1 = 1.0f / (1.0f + q);
      const float T = w * i1, P = T * i1;
      const float vk = vp[e];
      const float raw = (fk < kx[e] ? T - tp[e] : (fk > kx[e] ? tp[e] - T : 1.0f - tp[e] - T)) * keep_first;
      const float r = raw * vk;
      const float fkc = static_cast<float>(o - 1), fjc = static_cast<float>(o);  // relative to kc
      R[e] += r;
      N[e] += fkc * r;
      if constexpr (kGroups) {  // bin j-1's group, per lane
        const int32_t k = j - 1;
        const float g = static_cast<float>(gtab[std::min(std::max(k, 0), n - 1)]);
        gk[e] = (k >= 0) & (k < n) ? g : -1.0f;
        rs[e] = vk > 0.0f ? raw : 0.0f;
      }
      const float cA = vk * fkc - vj * fjc, cB = vk - vj;
      A0[e] += P * cA;
      B0[e] += P * cB;
      A1[e] += P * cA * d;
      B1[e] += P * cB * d;
      tp[e] = T;
      vp[e] = vj;
    }
    if constexpr (kGroups)
      for (int g = 0; g < groups; ++g) {
        const float fg = static_cast<float>(g);
        float* __restrict sg = L.Sg[g];
        float* __restrict kg = L.Kg[g];
#pragma omp simd
        for (int e = 0; e < cnt; ++e) {
          const float r = gk[e] == fg ? rs[e] : 0.0f;
          sg[e] += r;
          kg[e] += static_cast<float>(o - 1) * r;
        }
      }
  }
}

}  // namespace lowbit::cpq_lanes
