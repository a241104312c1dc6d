// CPU logistic-bin quantizer kernels: the tensor entry points of the fused CPQ kernels
// (quant/cpq_kernel.cpp), DropBits mask sampling and RQ's concrete sample and gradient (the
// per-element pass shared with CUDA, quant/kernels/logistic_math.h).
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

// One pass of rq_element (quant/kernels/logistic_math.h) over the tensor: y (forward) or the
// gradients (backward: dy given), the alpha/sigma sums taken per item and added in item order.
void rq_run(const Tensor& x_, const RqArgs& s_, const float* dy, float* y, float* dx, std::vector<double>* da,
            std::vector<double>* ds) {
  const int64_t n = x_.numel();
  const int64_t C = std::max(s_.alpha_size, s_.sigma_size);
  const int64_t inner = n / C;
  RqElementSetup p;
  p.qmin = static_cast<float>(s_.range.qmin);
  p.qmax = static_cast<float>(s_.range.qmax);
  p.lam = s_.temperature;
  p.levels = static_cast<int>(s_.range.levels());
  p.window = s_.window;
  p.straight_through = s_.straight_through;
  const uint64_t nb = static_cast<uint64_t>((p.levels + 3) / 4);
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
    for (int64_t it = ib; it < ie; ++it) {
      const int64_t c = items[it].c;
      const float alpha = s_.alpha[s_.alpha_size == 1 ? 0 : c], sigma = s_.sigma[s_.sigma_size == 1 ? 0 : c];
      double pa = 0, ps = 0;
      for (int64_t i = items[it].b; i < items[it].e; ++i) {
        const uint64_t first = s_.base + static_cast<uint64_t>(i) * nb;
        const RqElementResult r =
            rq_element(px[i], dy ? dy[i] : 0.0f, dy != nullptr, alpha, sigma, p, [&](int j, uint32_t* w) {
              const PhiloxBlock blk = s_.gen.block(first + static_cast<uint64_t>(j));
              std::copy(blk.begin(), blk.end(), w);
            });
        if (y) y[i] = r.y;
        if (dx) dx[i] = r.dx;
        pa += static_cast<double>(r.dalpha);
        ps += static_cast<double>(r.dsigma);
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
