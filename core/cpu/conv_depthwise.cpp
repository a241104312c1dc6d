// Direct depthwise convolution on zero-padded channel planes: the inner loops run along
// output columns with no bounds checks, so the compiler vectorises them for stride 1.
#include "conv_depthwise.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "../parallel.h"

namespace lowbit::cpu::conv_depthwise {
namespace {

// xp [hp, wp] = x [h, w] with pad rows / columns of zeros on each side.
void pad_plane(const Conv2dGeometry& g, const float* x, float* xp) {
  const int64_t wp = g.w + 2 * g.pad_w, hp = g.h + 2 * g.pad_h;
  std::fill(xp, xp + hp * wp, 0.0f);
  for (int64_t r = 0; r < g.h; ++r) std::memcpy(xp + (r + g.pad_h) * wp + g.pad_w, x + r * g.w, g.w * sizeof(float));
}

}  // namespace

// y[oh][ow] = bias + sum over ki, kj of w[ki][kj] * xp[sh*oh + ki*dh][sw*ow + kj*dw].
void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t wp = g.w + 2 * g.pad_w, hp = g.h + 2 * g.pad_h, P = g.oh * g.ow, kk = g.kh * g.kw;
  parallel_for(g.n * g.c, 1, [&](int64_t b, int64_t e) {
    std::vector<float> xp(static_cast<size_t>(hp * wp));
    for (int64_t it = b; it < e; ++it) {
      const int64_t c = it % g.c;
      pad_plane(g, x + it * g.h * g.w, xp.data());
      float* yo = y + it * P;
      std::fill(yo, yo + P, bias ? bias[c] : 0.0f);
      for (int64_t oh = 0; oh < g.oh; ++oh) {
        float* yr = yo + oh * g.ow;
        for (int64_t ki = 0; ki < g.kh; ++ki)
          for (int64_t kj = 0; kj < g.kw; ++kj) {
            const float wv = w[c * kk + ki * g.kw + kj];
            const float* xr = xp.data() + (g.stride_h * oh + ki * g.dil_h) * wp + kj * g.dil_w;
            for (int64_t ow = 0; ow < g.ow; ++ow) yr[ow] += wv * xr[g.stride_w * ow];
          }
      }
    }
  });
}

// dxp[sh*oh + ki*dh][sw*ow + kj*dw] += w[ki][kj] * dy[oh][ow], then cropped into dx.
// dw[ki][kj] = sum over images, oh, ow of dy[oh][ow] * xp[...]: each thread owns whole
// channels and sums their images in order, so the result does not depend on the thread count.
void backward(const Conv2dGeometry& g, const float* dy, const float* x, const float* w, float* dx, float* dw) {
  const int64_t wp = g.w + 2 * g.pad_w, hp = g.h + 2 * g.pad_h, P = g.oh * g.ow, kk = g.kh * g.kw;
  if (dx)
    parallel_for(g.n * g.c, 1, [&](int64_t b, int64_t e) {
      std::vector<float> dxp(static_cast<size_t>(hp * wp));
      for (int64_t it = b; it < e; ++it) {
        const int64_t c = it % g.c;
        std::fill(dxp.begin(), dxp.end(), 0.0f);
        const float* dyo = dy + it * P;
        for (int64_t oh = 0; oh < g.oh; ++oh)
          for (int64_t ki = 0; ki < g.kh; ++ki)
            for (int64_t kj = 0; kj < g.kw; ++kj) {
              const float wv = w[c * kk + ki * g.kw + kj];
              float* dr = dxp.data() + (g.stride_h * oh + ki * g.dil_h) * wp + kj * g.dil_w;
              const float* gr = dyo + oh * g.ow;
              for (int64_t ow = 0; ow < g.ow; ++ow) dr[g.stride_w * ow] += wv * gr[ow];
            }
        float* dxo = dx + it * g.h * g.w;
        for (int64_t r = 0; r < g.h; ++r)
          std::memcpy(dxo + r * g.w, dxp.data() + (r + g.pad_h) * wp + g.pad_w, g.w * sizeof(float));
      }
    });
  if (dw)
    parallel_for(g.c, 1, [&](int64_t b, int64_t e) {
      std::vector<float> xp(static_cast<size_t>(hp * wp));
      std::vector<double> acc(static_cast<size_t>(kk));
      for (int64_t c = b; c < e; ++c) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t img = 0; img < g.n; ++img) {
          pad_plane(g, x + (img * g.c + c) * g.h * g.w, xp.data());
          const float* dyo = dy + (img * g.c + c) * P;
          for (int64_t ki = 0; ki < g.kh; ++ki)
            for (int64_t kj = 0; kj < g.kw; ++kj) {
              float s = 0;
              for (int64_t oh = 0; oh < g.oh; ++oh) {
                const float* xr = xp.data() + (g.stride_h * oh + ki * g.dil_h) * wp + kj * g.dil_w;
                const float* gr = dyo + oh * g.ow;
                for (int64_t ow = 0; ow < g.ow; ++ow) s += gr[ow] * xr[g.stride_w * ow];
              }
              acc[static_cast<size_t>(ki * g.kw + kj)] += s;
            }
        }
        for (int64_t k = 0; k < kk; ++k) dw[c * kk + k] = static_cast<float>(acc[static_cast<size_t>(k)]);
      }
    });
}

}  // namespace lowbit::cpu::conv_depthwise
