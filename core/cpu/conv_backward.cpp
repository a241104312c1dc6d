// CPU conv2d gradients: the data gradient (stride 1 as a forward convolution, otherwise by
// scatter-adds into a channels-last image, direct row updates for few input channels), the
// weight gradient (a GEMM over pixels, or dot products for few input channels) and the bias
// gradient.
// GCC 12 flags _mm512_undefined_ps() inside its own AVX-512 headers (a false positive,
// GCC PR 105593); the pragma precedes every include so it covers them.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <algorithm>
#include <map>
#include <mutex>

#include "../parallel.h"
#include "conv_gemm.h"
#include "conv_layout.h"

namespace lowbit::cpu::conv_gemm {

using conv_layout::ZLayout;
using conv_tiles::Tile;

// dx for stride 1: the correlation of dy (padded by dil * (k - 1) - pad) with the kernel
// flipped in space and transposed in channels, i.e. a forward convolution.
void data_grad_as_conv(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const int64_t cg = g.c / g.groups, og = g.o / g.groups, kk = g.kh * g.kw;
  Tensor wt_t = Tensor::empty({g.c * og * kk});
  float* wt = wt_t.data<float>();
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t ci = 0; ci < cg; ++ci)
      for (int64_t oi = 0; oi < og; ++oi)
        for (int64_t k = 0; k < kk; ++k)
          wt[((grp * cg + ci) * og + oi) * kk + (kk - 1 - k)] = w[((grp * og + oi) * cg + ci) * kk + k];
  Conv2dGeometry t{g.n, g.o, g.oh, g.ow, g.c, g.kh, g.kw, g.h, g.w, 1, 1,
                   g.dil_h * (g.kh - 1) - g.pad_h, g.dil_w * (g.kw - 1) - g.pad_w, g.dil_h, g.dil_w, g.groups};
  forward_shifted(t, dy, wt, nullptr, dx);
}

// dx in general, channels-last: for each output pixel p and tap segment, the row
// dxt[window of p] += sum_o dy[o][p] * w[o][segment] (tiles of pixels scatter-add into
// overlapping rows of the padded image in order), then dxt is transposed back into NCHW.
void data_grad_channels_last(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const int64_t cg = g.c / g.groups, og = g.o / g.groups, K = cg * g.kh * g.kw, P = g.oh * g.ow;
  const int64_t wp = g.w + 2 * g.pad_w, hp = g.h + 2 * g.pad_h;
  const Segments seg = segments(g);
  const TileShape ts = pick_tile(P, seg.len);
  const TileFn fn = tile_fn(ts);
  const std::vector<float> wr = weight_tap_major(g, w, false);
  const std::vector<int64_t> poff = pixel_offsets(g), ooff = strided_offsets(og, K);
  parallel_for(g.n * g.groups, 1, [&](int64_t b, int64_t e) {
    Tensor dxt = Tensor::empty({hp * wp * cg});
    for (int64_t it = b; it < e; ++it) {
      const int64_t img = it / g.groups, grp = it % g.groups;
      std::fill(dxt.data<float>(), dxt.data<float>() + hp * wp * cg, 0.0f);
      Tile t;
      t.K = og;
      t.ldk = P;
      t.off = ooff.data();
      t.accumulate = true;
      for (int64_t s = 0; s < seg.count; ++s) {
        const int64_t base = seg.base(g, s, wp, cg), col0 = seg.first_tap(g, s) * cg;
        for (int64_t c0 = 0; c0 < seg.len; c0 += ts.cols()) {
          t.n = narrow(std::min(ts.cols(), seg.len - c0));
          t.z = wr.data() + grp * og * K + col0 + c0;
          t.c = dxt.data<float>() + base + c0;
          for (int64_t p0 = 0; p0 < P; p0 += ts.mr) {
            t.a = dy + (img * g.o + grp * og) * P + p0;
            t.crow = poff.data() + p0;
            t.mv = narrow(std::min<int64_t>(ts.mr, P - p0));
            fn(t);
          }
        }
      }
      float* dxi = dx + (img * g.c + grp * cg) * g.h * g.w;
      for (int64_t r = 0; r < g.h; ++r)
        conv_layout::transpose(dxt.data<float>() + ((r + g.pad_h) * wp + g.pad_w) * cg, cg, g.w, cg, dxi + r * g.w,
                               g.h * g.w);
    }
  });
}

// dx for stride 1 (rows undilated) and few input channels per group: a grayscale or RGB first
// layer, whose data gradient a learned input quantizer needs. The GEMM paths put those
// channels on a tile's rows, so with one or three of them most of each tile computes nothing
// (and the forward-convolution path first builds a copy of dy per tap). Here
//   dx[c][r][s] = sum over o, ki, kj of w[o][c][ki][kj] * dy[o][r + ph - ki][s + pw - kj dw]
// is summed for two rows of dx and 32 columns at a time in registers: a segment of dy row d
// serves row r with tap ki = r + ph - d and row r + 1 with ki + 1, so each load feeds two
// FMAs. dy is read from a zero-padded copy of the image's planes; one thread sums each image.
void data_grad_direct(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  using V = float __attribute__((vector_size(32)));
  constexpr int64_t kV = 8, kCols = 4 * kV;
  const int64_t cg = g.c / g.groups, og = g.o / g.groups, kh = g.kh, kw = g.kw;
  // dy row i sits at plane row i + top, column j at column j + left; the planes reach every
  // row and 32-column block that a (possibly odd, discarded) row pair reads.
  const int64_t top = std::max<int64_t>(0, kh - 1 - g.pad_h);
  const int64_t left = std::max<int64_t>(0, g.dil_w * (kw - 1) - g.pad_w);
  const int64_t wr = (g.w + kCols - 1) / kCols * kCols;
  const int64_t hp = std::max(g.oh, g.h + g.pad_h + 1) + top, wp = std::max(wr + g.pad_w, g.ow) + left;
  const int64_t plane = hp * wp;
  // Per (o, c): the taps with a zero row above and below (row m holds w[m - 1]).
  std::vector<float> wt(static_cast<size_t>(g.o * cg * (kh + 2) * kw), 0.0f);
  for (int64_t oc = 0; oc < g.o * cg; ++oc)
    std::copy_n(w + oc * kh * kw, kh * kw, wt.data() + (oc * (kh + 2) + 1) * kw);
  parallel_for(g.n * g.groups, 1, [&](int64_t b, int64_t e) {
    Tensor pad_t = Tensor::zeros({og * plane});  // the copies below leave the borders zero
    float* pad = pad_t.data<float>();
    float out[2][kCols];
    for (int64_t it = b; it < e; ++it) {
      const int64_t img = it / g.groups, grp = it % g.groups;
      for (int64_t oi = 0; oi < og; ++oi)
        for (int64_t i = 0; i < g.oh; ++i)
          std::copy_n(dy + ((img * g.o + grp * og + oi) * g.oh + i) * g.ow, g.ow,
                      pad + oi * plane + (i + top) * wp + left);
      for (int64_t ci = 0; ci < cg; ++ci) {
        float* dxc = dx + (img * g.c + grp * cg + ci) * g.h * g.w;
        for (int64_t r = 0; r < g.h; r += 2)
          for (int64_t s0 = 0; s0 < g.w; s0 += kCols) {
            V a0[4] = {}, a1[4] = {};
            for (int64_t oi = 0; oi < og; ++oi) {
              const float* wk = wt.data() + ((grp * og + oi) * cg + ci) * (kh + 2) * kw;
              // dy row d = r + ph + 1 - m (m = 0..kh): row r's tap m - 1, row r + 1's tap m
              const float* base = pad + oi * plane + (r + g.pad_h + 1 + top) * wp + s0 + g.pad_w + left;
              for (int64_t m = 0; m <= kh; ++m) {
                const float* row = base - m * wp;
                for (int64_t kj = 0; kj < kw; ++kj) {
                  const float* src = row - kj * g.dil_w;
                  const float w0 = wk[m * kw + kj], w1 = wk[(m + 1) * kw + kj];
                  for (int v = 0; v < 4; ++v) {
                    V x;
                    __builtin_memcpy(&x, src + v * kV, sizeof(V));
                    a0[v] += w0 * x;
                    a1[v] += w1 * x;
                  }
                }
              }
            }
            __builtin_memcpy(out[0], a0, sizeof(a0));
            __builtin_memcpy(out[1], a1, sizeof(a1));
            const int64_t cols = std::min(kCols, g.w - s0);
            for (int64_t q = 0; q < 2 && r + q < g.h; ++q) std::copy_n(out[q], cols, dxc + (r + q) * g.w + s0);
          }
      }
    }
  });
}

// dw[o][c][ki][kj] = sum over images and pixels p = (oh, ow) of dy[o][p] * xpad[c][sh*oh + ki*dh][sw*ow + kj*dw].
// With x channels-last and padded (xt), the taps of one segment are consecutive floats of xt
// at pixel p's window: per segment, C[o][tap] += dy[o][p] * B_p over pixels, B_p read in
// place through the per-pixel offsets. Summed as dw'[o][tap * cg + c]; each thread keeps
// its own partial and the partials are added in a fixed order, then reordered to [o][c][tap].
void weight_grad(const Conv2dGeometry& g, const float* dy, const float* x, float* dw) {
  const int64_t cg = g.c / g.groups, og = g.o / g.groups, kk = g.kh * g.kw, K = cg * kk, P = g.oh * g.ow;
  const int64_t wp = g.w + 2 * g.pad_w, hp = g.h + 2 * g.pad_h, img_size = hp * wp * cg;
  const Segments seg = segments(g);
  const TileShape ts = pick_tile(og, seg.len);
  const TileFn fn = tile_fn(ts);
  // Small images are taken several at a time (their dy rows concatenated), so each pass over
  // the partial dw (large for wide layers) covers at least ~512 pixels; their channels-last
  // copies stay within about 1 MB.
  const int64_t nb = std::clamp<int64_t>(std::min((512 + P - 1) / P, (int64_t(1) << 18) / img_size), 1,
                                         std::max<int64_t>(g.n, 1));
  const std::vector<int64_t> poff = pixel_offsets(g), rows = strided_offsets(og, nb * P);
  std::vector<int64_t> off(static_cast<size_t>(nb * P));
  for (int64_t m = 0; m < nb; ++m)
    for (int64_t p = 0; p < P; ++p) off[static_cast<size_t>(m * P + p)] = m * img_size + poff[static_cast<size_t>(p)];
  std::map<int64_t, Tensor> partials;
  std::mutex mu;
  parallel_for(g.n, 1, [&](int64_t b, int64_t e) {
    Tensor part = Tensor::zeros({g.o * K});
    Tensor xt = Tensor::empty({nb * img_size});
    Tensor dyc = nb > 1 ? Tensor::empty({og * nb * P}) : Tensor();
    Tile t;
    t.off = off.data();
    t.ldc = K;
    t.accumulate = true;
    for (int64_t i0 = b; i0 < e; i0 += nb) {
      const int64_t cnt = std::min(nb, e - i0);
      t.K = cnt * P;
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        for (int64_t m = 0; m < cnt; ++m)
          conv_layout::channels_last_padded(g, x + ((i0 + m) * g.c + grp * cg) * g.h * g.w,
                                            xt.data<float>() + m * img_size);
        // A rows: dy[o] of each image, one after another (copied when there are several).
        const float* dya = dy + (i0 * g.o + grp * og) * P;
        if (nb > 1) {
          float* d = dyc.data<float>();
          for (int64_t o = 0; o < og; ++o)
            for (int64_t m = 0; m < cnt; ++m)
              std::copy_n(dy + ((i0 + m) * g.o + grp * og + o) * P, P, d + (o * nb + m) * P);
          dya = d;
        }
        for (int64_t s = 0; s < seg.count; ++s) {
          const float* base = xt.data<float>() + seg.base(g, s, wp, cg);
          const int64_t col0 = seg.first_tap(g, s) * cg;
          for (int64_t c0 = 0; c0 < seg.len; c0 += ts.cols()) {
            t.z = base + c0;
            t.n = narrow(std::min(ts.cols(), seg.len - c0));
            for (int64_t o0 = 0; o0 < og; o0 += ts.mr) {
              t.a = dya;
              t.arow = rows.data() + o0;
              t.mv = narrow(std::min<int64_t>(ts.mr, og - o0));
              t.c = part.data<float>() + (grp * og + o0) * K + col0 + c0;
              fn(t);
            }
          }
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    partials.emplace(b, std::move(part));
  });
  // dw[o][c][tap] = sum of the partials at [o][tap * cg + c], in the partials' fixed order.
  parallel_for(g.o, 1, [&](int64_t ob, int64_t oe) {
    for (int64_t o = ob; o < oe; ++o)
      for (int64_t tap = 0; tap < kk; ++tap)
        for (int64_t c = 0; c < cg; ++c) {
          const int64_t src = o * K + tap * cg + c;
          float v = 0;
          for (auto& [start, part] : partials) v += part.data<float>()[src];
          dw[(o * cg + c) * kk + tap] = v;
        }
  });
}

// The weight gradient of layers with few input channels (fewer than 16 floats per tap segment,
// e.g. the RGB first layer), where the channels-last tiles would run mostly empty:
// dw[o][k] = sum over images and pixels of dy[o][p] * B[k][p], B the shifted input copies of
// the stride-1 forward, as dot products along pixels. Partials per thread, added in order.
void weight_grad_dots(const Conv2dGeometry& g, const float* dy, const float* x, float* dw) {
  constexpr int MO = conv_tiles::kDotRows, NK = conv_tiles::kDotCols;
  const int64_t cg = g.c / g.groups, og = g.o / g.groups, K = cg * g.kh * g.kw, P = g.oh * g.ow;
  const ZLayout L = conv_layout::make_z_layout(g);
  // Images per pass: enough pixels to amortise each tile's horizontal sums, copies within L2.
  const int64_t want = std::max<int64_t>(1, 2048 / std::max<int64_t>(P, 1));
  const int64_t fit = L.direct ? want : std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(L.size, 1));
  const int64_t nb = std::min(want, fit);
  std::map<int64_t, Tensor> partials;
  std::mutex mu;
  parallel_for(g.n, 1, [&](int64_t b, int64_t e) {
    Tensor part = Tensor::zeros({g.o * K});
    Tensor zt = L.direct ? Tensor() : Tensor::empty({nb * L.size});
    std::vector<const float*> dys(static_cast<size_t>(nb)), zs(static_cast<size_t>(nb));
    int64_t dy_off[MO], off[NK];
    for (int64_t i0 = b; i0 < e; i0 += nb) {
      const int64_t cnt = std::min(nb, e - i0);
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        for (int64_t m = 0; m < cnt; ++m) {
          const float* xin = x + ((i0 + m) * g.c + grp * cg) * g.h * g.w;
          float* z = L.direct ? nullptr : zt.data<float>() + m * L.size;
          if (z) conv_layout::build_z(g, L, xin, z);
          zs[static_cast<size_t>(m)] = z ? z : xin;
          dys[static_cast<size_t>(m)] = dy + ((i0 + m) * g.o + grp * og) * P;
        }
        float* d = part.data<float>() + grp * og * K;
        for (int64_t o0 = 0; o0 < og; o0 += MO) {
          for (int i = 0; i < MO; ++i) dy_off[i] = std::min(o0 + i, og - 1) * P;
          for (int64_t k0 = 0; k0 < K; k0 += NK) {
            for (int j = 0; j < NK; ++j) off[j] = L.off[static_cast<size_t>(std::min(k0 + j, K - 1))];
            conv_tiles::dot_tile<MO, NK>(narrow(cnt), dys.data(), zs.data(), P, dy_off, off, d + o0 * K + k0, K,
                                         narrow(std::min<int64_t>(MO, og - o0)), narrow(std::min<int64_t>(NK, K - k0)));
          }
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    partials.emplace(b, std::move(part));
  });
  const int64_t total = g.o * K;
  std::fill(dw, dw + total, 0.0f);
  for (auto& [start, part] : partials) {
    const float* p = part.data<float>();
    parallel_for(total, 1 << 14, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) dw[i] += p[i];
    });
  }
}

// db[o] = sum of dy over images and pixels, each channel summed in one fixed order: per
// image plane in 16 interleaved float lanes (a single running sum is one dependent add per
// element, which made this 2.4 ms of LeNet-5's 3.4 ms first-layer backward), then lanes and
// images in double.
void bias_grad(const Conv2dGeometry& g, const float* dy, float* db) {
  const int64_t P = g.oh * g.ow;
  constexpr int64_t L = 16;
  parallel_for(g.o, 1, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      double s = 0;
      for (int64_t img = 0; img < g.n; ++img) {
        const float* r = dy + (img * g.o + o) * P;
        float lane[L] = {};
        int64_t p = 0;
        for (; p + L <= P; p += L)
          for (int64_t j = 0; j < L; ++j) lane[j] += r[p + j];
        for (; p < P; ++p) lane[p % L] += r[p];
        double part = 0;
        for (int64_t j = 0; j < L; ++j) part += lane[j];
        s += part;
      }
      db[o] = static_cast<float>(s);
    }
  });
}

}  // namespace lowbit::cpu::conv_gemm
