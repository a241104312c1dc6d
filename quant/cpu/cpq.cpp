// CPU logistic-bin quantizer kernels: the tensor entry points of the fused CPQ kernels
// (quant/cpq_kernel.cpp), DropBits mask sampling and RQ's concrete sample and gradient (moved
// unchanged from quant/dropbits.cpp and quant/rq.cpp: the results are bit-identical).
#include <algorithm>
#include <cmath>

#include "../../core/parallel.h"
#include "../kernels/cpq.h"

namespace lowbit::cpu {

void cpq_forward(const Tensor& x, const CpqArgs& args, const Tensor& elem_mask, Tensor& y) {
  CpqArgs a = args;
  a.mask.elem_mask = elem_mask.defined() ? elem_mask.data<uint8_t>() : nullptr;
  ::lowbit::cpq_forward(x.data<float>(), x.numel(), a, y.data<float>());
}

void cpq_backward(const Tensor& x, const Tensor& dy, const CpqArgs& args, const Tensor& elem_mask,
                  const CpqGradOut& grads, Tensor& dx) {
  CpqArgs a = args;
  a.mask.elem_mask = elem_mask.defined() ? elem_mask.data<uint8_t>() : nullptr;
  CpqGradOut out = grads;
  out.dx = dx.defined() ? dx.data<float>() : nullptr;
  ::lowbit::cpq_backward(x.data<float>(), dy.data<float>(), x.numel(), a, out);
}

void dropbits_masks(const Generator& gen, uint64_t base, const DropBitsDraw& d, Tensor& out_t) {
  uint8_t* out = out_t.data<uint8_t>();
  parallel_for(out_t.numel(), 1 << 12, [&](int64_t b, int64_t e) {
    uint32_t r[4 * 64];
    for (int64_t i = b; i < e; i += 64) {
      const int64_t m = std::min<int64_t>(64, e - i);
      gen.fill(base + static_cast<uint64_t>(i), m, r);
      for (int64_t j = 0; j < m; ++j)
        out[i + j] = dropbits_mask(r[4 * j], r[4 * j + 1], r[4 * j + 2], r[4 * j + 3], d.bits, d.threshold);
    }
  });
}

namespace {
constexpr int64_t kItem = 4096;  // elements per reduction block (fixed: independent of threads)
constexpr float kTiny = 1e-30f;
constexpr int kMaxLevels = 256;

// One pass: y (forward) or the gradients (backward: dy given).
void rq_run(const Tensor& x_, const RqArgs& s_, const float* dy, float* y, float* dx, std::vector<double>* da,
            std::vector<double>* ds) {
  const int64_t n = x_.numel();
  const int64_t C = std::max(s_.alpha_size, s_.sigma_size);
  const int64_t inner = n / C;
  const GridRange r = s_.range;
  const int levels = static_cast<int>(r.levels());
  const uint64_t nb = static_cast<uint64_t>((levels + 3) / 4);
  const float qmin = static_cast<float>(r.qmin), lam = s_.temperature;
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
    float rr[kMaxLevels], pp[kMaxLevels + 1], av[kMaxLevels];
    for (int64_t it = ib; it < ie; ++it) {
      const int64_t c = items[it].c;
      const float alpha = s_.alpha[s_.alpha_size == 1 ? 0 : c], sigma = s_.sigma[s_.sigma_size == 1 ? 0 : c];
      const float s = sigma / alpha, inv_s = alpha / sigma;
      double pa = 0, ps = 0;
      for (int64_t i = items[it].b; i < items[it].e; ++i) {
        const float u = px[i] / alpha, z = u - qmin;
        const float cn = std::min(std::max(std::nearbyint(u), qmin), static_cast<float>(r.qmax));
        const int kc = std::isnan(cn) ? 0 : static_cast<int>(cn - qmin);
        const int k0 = s_.window > 0 ? std::max(0, kc - s_.window) : 0;
        const int k1 = s_.window > 0 ? std::min(levels - 1, kc + s_.window) : levels - 1;
        const float R = bin_masses(z, inv_s, k0, k1, rr, pp);
        if (!(R > kTiny)) {  // every mass underflowed: the sample is the nearest point, no gradient
          if (y) y[i] = std::isnan(u) ? u : cn * alpha;
          if (dx) dx[i] = 0;
          if (dy) pa += static_cast<double>(dy[i] * cn);
          continue;
        }
        float amax = -INFINITY;
        int khard = kc;
        PhiloxBlock blk{};
        int64_t blk_id = -1;
        for (int k = k0; k <= k1; ++k) {
          if (k / 4 != blk_id) {
            blk_id = k / 4;
            blk = s_.gen.block(s_.base + static_cast<uint64_t>(i) * nb + static_cast<uint64_t>(blk_id));
          }
          // U in (0, 1) in double: in float, (2^24 - 1 + 0.5) / 2^24 rounds to 1, and log(-log 1)
          // = -inf made a = +inf and the concrete sample NaN (about once per 2^24 draws).
          const double U = (static_cast<double>(blk[static_cast<size_t>(k % 4)] >> 8) + 0.5) * (1.0 / 16777216.0);
          const float pi = rr[k - k0] / R;
          const float a = (pi > kTiny ? std::log(pi) : std::log(kTiny)) - static_cast<float>(std::log(-std::log(U)));
          av[k - k0] = a;
          if (a > amax) amax = a, khard = k;
        }
        float zs = 0, xs = 0, zc = 0;
        for (int k = k0; k <= k1; ++k) zs += (av[k - k0] = std::exp((av[k - k0] - amax) / lam));
        for (int k = k0; k <= k1; ++k) {
          av[k - k0] /= zs;  // z_k
          zc += av[k - k0] * (static_cast<float>(k) + qmin);
        }
        xs = alpha * zc;
        if (y) y[i] = s_.straight_through ? (static_cast<float>(khard) + qmin) * alpha : xs;
        if (!dy) continue;
        // rho_j = gamma_{j-1}/r_{j-1} - gamma_j/r_j, gamma_k = dy z_k (alpha c_k - x_soft)/lambda
        float s0 = 0, s1 = 0, prev = 0;
        for (int j = k0; j <= k1 + 1; ++j) {
          float cur = 0;
          if (j <= k1) {
            const float rk = rr[j - k0];
            const float g = dy[i] * av[j - k0] * (alpha * (static_cast<float>(j) + qmin) - xs) / lam;
            cur = rk > kTiny * R ? g / rk : 0.0f;
          }
          const float rho = prev - cur, d = static_cast<float>(j) - 0.5f - z;
          s0 += rho * pp[j - k0];
          s1 += rho * pp[j - k0] * d;
          prev = cur;
        }
        if (dx) dx[i] = -s0 / sigma;
        pa += static_cast<double>((s1 + u * s0) / sigma + dy[i] * zc);
        ps += static_cast<double>(-s1 / (s * sigma));
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
  LOWBIT_CHECK(a.range.levels() <= kMaxLevels, "rq_concrete", "supports up to 8 bits");
  rq_run(x, a, nullptr, y.data<float>(), nullptr, nullptr, nullptr);
}

void rq_backward(const Tensor& x, const Tensor& dy, const RqArgs& a, Tensor& dx, std::vector<double>& dalpha,
                 std::vector<double>& dsigma) {
  rq_run(x, a, dy.data<float>(), nullptr, dx.data<float>(), &dalpha, &dsigma);
}

}  // namespace lowbit::cpu
