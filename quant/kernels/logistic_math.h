// The element-wise math of the logistic-bin kernels, compiled for the host and (under nvcc)
// the device from this one text, so the CPU and CUDA backends draw and round the same way:
// fast_exp / fast_log / tail_exp, the truncated bin masses of one value, and RQ's per-element
// pass (Gumbel-max sample, concrete relaxation and its gradient).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define LOWBIT_HOST_DEVICE __host__ __device__
#else
#define LOWBIT_HOST_DEVICE
#endif

namespace lowbit {

namespace logistic_detail {
LOWBIT_HOST_DEVICE inline int32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_int(f);
#else
  return std::bit_cast<int32_t>(f);
#endif
}
LOWBIT_HOST_DEVICE inline float bits_float(int32_t i) {
#ifdef __CUDA_ARCH__
  return __int_as_float(i);
#else
  return std::bit_cast<float>(i);
#endif
}
// The host form is std::min(std::max(x, lo), hi) written as selects of values (NaN stays NaN):
// std::min/max return references, which GCC may vectorise as gathers behind a runtime check
// that keeps the scalar loop (it did in cpq_backward's block prologue).
LOWBIT_HOST_DEVICE inline float clampf(float x, float lo, float hi) {
#ifdef __CUDA_ARCH__
  return fminf(fmaxf(x, lo), hi);
#else
  const float m = x < lo ? lo : x;
  return hi < m ? hi : m;
#endif
}
LOWBIT_HOST_DEVICE inline float min0(float x) {  // min(x, 0); NaN: NaN on the host, 0 on the device
#ifdef __CUDA_ARCH__
  return fminf(x, 0.0f);
#else
  return std::min(x, 0.0f);
#endif
}
LOWBIT_HOST_DEVICE inline bool finite(float x) {
#ifdef __CUDA_ARCH__
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}
}  // namespace logistic_detail

// nearbyint for |v| < 2^22 (callers clamp first): adding 1.5 * 2^23 rounds to an integer in
// the current (round-to-nearest-even) mode. std::nearbyint and std::floor may raise the
// inexact flag, which keeps GCC from vectorising them under -ftrapping-math.
LOWBIT_HOST_DEVICE inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

// exp for the kernels: branch-free so loops over elements vectorise (Cephes' expf polynomial,
// relative error about 2e-7); 0 below -87, where the result would be denormal.
LOWBIT_HOST_DEVICE inline float fast_exp(float x) {
  const float xc = logistic_detail::clampf(x, -87.0f, 88.0f);
  // Round x*log2(e) to an integer by adding 1.5 * 2^23: n sits in the low mantissa bits, so no
  // float-to-int conversion (which may trap, and so stops the vectoriser) is needed.
  const float t = xc * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = logistic_detail::bits_float((logistic_detail::float_bits(t) - 0x4B400000 + 127) << 23);
  return x < -87.0f ? 0.0f : p * scale;
}

// log for the kernels, for positive normal x (their inputs: masses clamped to >= 1e-30 and
// Gumbel uniforms in (0, 1)); branch-free so loops over elements vectorise. Cephes' logf:
// x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) from a degree-9 polynomial in m - 1 (relative
// error about 1e-7, and exact-to-rounding near 1, where the Gumbel noise needs it).
LOWBIT_HOST_DEVICE inline float fast_log(float x) {
  const int32_t b = logistic_detail::float_bits(x);
  const float m0 = logistic_detail::bits_float((b & 0x007fffff) | 0x3f000000);  // [1/2, 1)
  const bool low = m0 < 0.707106781186547524f;
  const float e = static_cast<float>((b >> 23) - 126) - (low ? 1.0f : 0.0f);
  const float m = (low ? m0 + m0 : m0) - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  const float y = p * m * z - 2.12194440e-4f * e - 0.5f * z;
  return (m + y) + 0.693359375f * e;
}

// exp(min(x, 0)) for the scaled tail masses, 0 below e^-60: those masses are far under float
// resolution next to the nearest one (which is O(1)), and their products would otherwise
// reach denormal range, which costs a microcode assist per operation.
constexpr float kTailCut = -60.0f;
LOWBIT_HOST_DEVICE inline float tail_exp(float x) { return x < kTailCut ? 0.0f : fast_exp(logistic_detail::min0(x)); }

// For one value z = x/alpha - qmin (0-based code space) and 1/s = alpha/sigma: the masses r[k-k0]
// of bins k0..k1 and the logistic densities P[j-k0] = Sig'(t_j) of their boundaries k0..k1+1,
// all scaled by one factor exp(omega) so the nearest ones are O(1) (RQ's local window: the
// distribution truncated to those bins). Returns the scaled total mass R (0: all underflowed).
LOWBIT_HOST_DEVICE inline float bin_masses(float z, float inv_s, int k0, int k1, float* r, float* P) {
  const float kx = fminf(fmaxf(floorf(z + 0.5f), static_cast<float>(k0) - 1.0f), static_cast<float>(k1) + 1.0f);
  const float lo = (static_cast<float>(k0) - 0.5f - z) * inv_s, hi = (z - static_cast<float>(k1) - 0.5f) * inv_s;
  const float om = lo > 0 ? lo : (hi > 0 ? hi : 0.0f), eom = fast_exp(-om);
  float tp = 0, R = 0;
  for (int j = k0; j <= k1 + 1; ++j) {
    const float a = fabsf(static_cast<float>(j) - 0.5f - z) * inv_s;
    const float w = tail_exp(om - a);
    const float i1 = 1.0f / (1.0f + w * eom);
    const float T = w * i1;
    P[j - k0] = T * i1;
    if (j > k0) {
      const float fk = static_cast<float>(j - 1);
      const float rk = fmaxf(fk < kx ? T - tp : (fk > kx ? tp - T : 1.0f - tp - T), 0.0f);
      r[j - 1 - k0] = rk;
      R += rk;
    }
    tp = T;
  }
  return logistic_detail::finite(R) ? R : 0.0f;
}

// ---- RQ: one element of the concrete relaxation (quant/rq.h has the formulas) ----
constexpr int kRqMaxLevels = 256;
constexpr float kRqTinyMass = 1e-30f;

struct RqElementSetup {
  float qmin = 0, qmax = 0, lam = 1;  // the grid's codes, the temperature
  int levels = 1, window = 0;         // window: bins either side of the nearest point (0: all)
  bool straight_through = true;
};
struct RqElementResult {
  float y = 0;       // the sample: the hard point (ST) or the soft one
  float dx = 0;      // with a gradient: d loss / d x
  float dalpha = 0;  // ... this element's share of d loss / d alpha and d sigma
  float dsigma = 0;
};

// The Gumbel noise of one Philox word: U = (2v + 1) / 2^24 from its top 23 bits v is exact in
// float and strictly inside (0, 1) (the largest is 1 - 2^-24, whose -log is 2^-24 and not 0),
// so -log(-log U) is finite for every word.
LOWBIT_HOST_DEVICE inline float gumbel_of_word(uint32_t w) {
  const float U = static_cast<float>(w >> 9) * 0x1p-23f + 0x1p-24f;
  return -fast_log(-fast_log(U));
}

// x at (alpha, sigma): the sample and, when `grad`, its gradient for upstream dy. The CPU's
// lane pass (quant/cpu/rq.cpp) is this function over many elements at once, operation for
// operation; keep the two in step. `block(j, w)`
// writes the 4 words of Philox block j of this element into w (level k uses word k % 4 of
// block k / 4).
template <class Block>
LOWBIT_HOST_DEVICE inline RqElementResult rq_element(float x, float dy, bool grad, float alpha, float sigma,
                                                     const RqElementSetup& p, Block&& block) {
  RqElementResult out;
  const float s = sigma / alpha, inv_s = alpha / sigma, qmin = p.qmin, lam = p.lam;
  const float u = x / alpha, z = u - qmin;
  const float rn = rintf(u);
  const bool nan_u = u != u;
  const float cn = fminf(fmaxf(rn, qmin), p.qmax);  // qmin for NaN u: nan_u keeps the NaN below
  const int kc = nan_u ? 0 : static_cast<int>(cn - qmin);
  const int k0 = p.window > 0 ? (kc - p.window > 0 ? kc - p.window : 0) : 0;
  const int k1 = p.window > 0 ? (kc + p.window < p.levels - 1 ? kc + p.window : p.levels - 1) : p.levels - 1;
  float rr[kRqMaxLevels], pp[kRqMaxLevels + 1], av[kRqMaxLevels];
  const float R = bin_masses(z, inv_s, k0, k1, rr, pp);
  if (!(R > kRqTinyMass)) {  // every mass underflowed: the sample is the nearest point, no gradient
    out.y = nan_u ? u : cn * alpha;
    if (grad) out.dalpha = dy * (nan_u ? u : cn);  // a NaN input shows in alpha's gradient
    return out;
  }
  float amax = -INFINITY;
  int khard = kc;
  uint32_t w[4] = {0, 0, 0, 0};
  const float inv_R = 1.0f / R;
  for (int k = k0; k <= k1; ++k) {
    if (k == k0 || k % 4 == 0) block(k / 4, w);
    const float pi = rr[k - k0] * inv_R;
    const float a = fast_log(pi > kRqTinyMass ? pi : kRqTinyMass) + gumbel_of_word(w[k % 4]);
    av[k - k0] = a;
    if (a > amax) amax = a, khard = k;
  }
  float zs = 0, zc = 0;
  const float inv_lam = 1.0f / lam;
  for (int k = k0; k <= k1; ++k) zs += (av[k - k0] = fast_exp((av[k - k0] - amax) * inv_lam));
  const float inv_zs = 1.0f / zs;
  for (int k = k0; k <= k1; ++k) {
    av[k - k0] *= inv_zs;  // z_k
    zc += av[k - k0] * (static_cast<float>(k) + qmin);
  }
  const float xs = alpha * zc;
  out.y = p.straight_through ? (static_cast<float>(khard) + qmin) * alpha : xs;
  if (!grad) return out;
  // rho_j = gamma_{j-1}/r_{j-1} - gamma_j/r_j, gamma_k = dy z_k (alpha c_k - x_soft)/lambda
  float s0 = 0, s1 = 0, prev = 0;
  for (int j = k0; j <= k1 + 1; ++j) {
    float cur = 0;
    if (j <= k1) {
      const float rk = rr[j - k0];
      const float g = dy * av[j - k0] * (alpha * (static_cast<float>(j) + qmin) - xs) * inv_lam;
      cur = rk > kRqTinyMass * R ? g / rk : 0.0f;
    }
    const float rho = prev - cur, d = static_cast<float>(j) - 0.5f - z;
    s0 += rho * pp[j - k0];
    s1 += rho * pp[j - k0] * d;
    prev = cur;
  }
  out.dx = -s0 / sigma;
  out.dalpha = (s1 + u * s0) / sigma + dy * zc;
  out.dsigma = -s1 / (s * sigma);
  return out;
}

}  // namespace lowbit
