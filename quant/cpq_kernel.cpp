// Fused CPU kernels of the logistic-bin categorical: CPQ forward (nearest surviving point) and
// the multi-class STE backward, one pass each, O(2^b) work per element, no 2^b-wide buffers.
#include "cpq_kernel.h"

#include <limits>

#include "../core/error.h"
#include "../core/parallel.h"
#include "cpq_lane_kernel.h"

namespace lowbit {

using namespace cpq_lanes;

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
        for (int e = 0; e < cnt; ++e) y[b + e] = std::isnan(u[e]) ? u[e] : (code[e] + qmin) * ch.alpha;
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
  std::vector<int32_t> dtab(static_cast<size_t>(n), 0);
  std::vector<float> wtab(static_cast<size_t>(n), 1.0f);
  if (a.mask.drop_bit) dtab.assign(a.mask.drop_bit, a.mask.drop_bit + n);
  if (a.mask.weight) wtab.assign(a.mask.weight, a.mask.weight + n);
  parallel_for(static_cast<int64_t>(ni), 1, [&](int64_t ib, int64_t ie) {
    Lanes L{};  // zeroed: the vector passes also read the lanes past a short last block
    for (int64_t it = ib; it < ie; ++it) {
      const Chan ch = chan_of(a, items[it].channel);
      double* acc = &part[static_cast<size_t>(it) * stride];
      for (int64_t b = items[it].begin; b < items[it].end; b += kLanes) {
        const int cnt = static_cast<int>(std::min<int64_t>(kLanes, items[it].end - b));
        const float fn = static_cast<float>(n), alpha = ch.alpha;
        // The block's x and dy, zero past a short block, so the loops below can run over
        // whole lanes with a fixed count.
        float xs[kLanes], dys[kLanes];
        std::copy_n(x + b, cnt, xs);
        std::copy_n(dy + b, cnt, dys);
        std::fill(xs + cnt, xs + kLanes, 0.0f);
        std::fill(dys + cnt, dys + kLanes, 0.0f);
        const float* __restrict xb = xs;
        const float* __restrict dyb = dys;
        float* __restrict lu = L.u;
        float* __restrict lz = L.z;
        float* __restrict lkx = L.kx;
#pragma omp simd
        for (int e = 0; e < kLanes; ++e) {
          const float u = xb[e] / alpha, z = u - qmin;
          lu[e] = u;
          lz[e] = z;
          // the bin holding x (either one on a boundary), clamped to [-1, n]; NaN -> -1
          const float kx = round_even(logistic_detail::clampf(z, -2.0f, fn + 1.0f));
          lkx[e] = kx == kx ? logistic_detail::clampf(kx, -1.0f, fn) : -1.0f;
        }
        if (a.mask.elem_mask) std::copy_n(a.mask.elem_mask + b, cnt, L.mk);
        else std::fill(L.mk, L.mk + cnt, a.mask.tensor_mask);
        for (int e = 0; e < cnt; ++e) L.mki[e] = L.mk[e];
        int k0 = 0, k1 = n - 1, half = n;
        nearest_codes(L.u, L.mk, cnt, a.range, a.mask, L.code);
        // lane_sums_local walks each element's window around its nearest surviving code
        for (int e = 0; e < cnt; ++e) L.kci[e] = static_cast<int32_t>(L.code[e]);
        lane_setup(L, cnt, ch, n, k0, k1, half);
        // per-element windows when they are much narrower than the block's union (5+ bits);
        // the per-code weight gradients (learned bits) walk the union window
        if (2 * half + 2 < (k1 - k0 + 2) / 2)
          (gtab ? lane_sums_local<true> : lane_sums_local<false>)(L, cnt, ch, n, wtab.data(), dtab.data(), half, gtab,
                                                                  groups);
        else if (!a.mask.any() && !gtab)
          lane_sums_plain(L, cnt, ch, k0, k1);
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
        if (out.dx) {
          float* __restrict dxb = out.dx + b;
#pragma omp simd
          for (int e = 0; e < cnt; ++e) dxb[e] = dyb[e] * gx[e];
        }
        if (out.alpha_direct)
          for (int e = 0; e < cnt; ++e) ga[e] += L.code[e] + qmin;
        std::fill(ga + cnt, ga + kLanes, 0.0f);
        std::fill(gs + cnt, gs + kLanes, 0.0f);
        // in four double lanes: one running sum is a chain of dependent adds
        double da[4] = {}, ds[4] = {};
        for (int e = 0; e < kLanes; e += 4)
          for (int j = 0; j < 4; ++j) {
            da[j] += static_cast<double>(dyb[e + j] * ga[e + j]);
            ds[j] += static_cast<double>(dyb[e + j] * gs[e + j]);
          }
        acc[0] += (da[0] + da[1]) + (da[2] + da[3]);
        acc[1] += (ds[0] + ds[1]) + (ds[2] + ds[3]);
        // dweight_g += sum_e dy_e alpha (K_g - mu S_g) / R
        for (int g = 0; g < groups; ++g) {
          double sum = 0;
          for (int e = 0; e < cnt; ++e) {
            const float R = L.R[e];
            if (!(R > kTinyMass && R <= std::numeric_limits<float>::max())) continue;
            sum += static_cast<double>(dyb[e] * ch.alpha * (L.Kg[g][e] - L.N[e] / R * L.Sg[g][e]) / R);
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
    const float w = tail_exp(L.om[0] - a);
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
