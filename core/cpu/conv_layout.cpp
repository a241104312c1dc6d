// The B-operand layout of the CPU convolution (shifted input copies) and col2im.
// GCC 12 flags _mm512_undefined_ps() inside its own AVX-512 headers (a false positive,
// GCC PR 105593); the pragma precedes every include so it covers them.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "conv_layout.h"

#include <algorithm>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace lowbit::cpu::conv_layout {

ZLayout make_z_layout(const Conv2dGeometry& g) {
  ZLayout L;
  const int64_t cg = g.c / g.groups;
  L.off.resize(static_cast<size_t>(cg * g.kh * g.kw));
  L.direct = g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  if (L.direct) {
    for (int64_t c = 0; c < cg; ++c) L.off[static_cast<size_t>(c)] = c * g.h * g.w;
    return L;
  }
  const int64_t sh = g.stride_h;
  L.flat = sh == 1 && g.stride_w == 1 && g.ow == g.w;
  L.hq = g.oh + (g.kh - 1) * g.dil_h / sh;
  L.size = g.kw * cg * sh * L.hq * g.ow;
  for (int64_t c = 0; c < cg; ++c)
    for (int64_t ki = 0; ki < g.kh; ++ki)
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t ph = ki * g.dil_h % sh, row = ki * g.dil_h / sh;
        L.off[static_cast<size_t>((c * g.kh + ki) * g.kw + kj)] = (((kj * cg + c) * sh + ph) * L.hq + row) * g.ow;
      }
  return L;
}

namespace {

// dst[j] = src[sw * j + s] where that index lies in [0, w), else 0, for j < n.
void sample_row(float* dst, int64_t n, const float* src, int64_t w, int64_t s, int64_t sw) {
  // Valid j: 0 <= sw * j + s < w.
  int64_t lo = s >= 0 ? 0 : (-s + sw - 1) / sw;
  int64_t hi = w - 1 - s < 0 ? 0 : std::min(n, (w - 1 - s) / sw + 1);
  lo = std::min(lo, n);
  if (hi < lo) hi = lo;
  for (int64_t j = 0; j < lo; ++j) dst[j] = 0.0f;
  if (sw == 1) {
    std::memcpy(dst + lo, src + lo + s, static_cast<size_t>(hi - lo) * sizeof(float));
  } else {
    for (int64_t j = lo; j < hi; ++j) dst[j] = src[sw * j + s];
  }
  for (int64_t j = hi; j < n; ++j) dst[j] = 0.0f;
}

// Stride 1 with output width == input width: plane (kj, c) is channel c read flat from
// offset s - pad_h * w, so one copy per plane; the columns that wrapped into the
// neighbouring row (the left or right padding) are zeroed after it.
void build_flat(const Conv2dGeometry& g, const ZLayout& L, const float* x, float* z) {
  const int64_t cg = g.c / g.groups, w = g.w, hw = g.h * g.w, len = L.hq * w;
  for (int64_t kj = 0; kj < g.kw; ++kj) {
    const int64_t s = kj * g.dil_w - g.pad_w, shift = s - g.pad_h * w;
    const int64_t lo = std::clamp<int64_t>(-shift, 0, len), hi = std::clamp<int64_t>(hw - shift, lo, len);
    for (int64_t c = 0; c < cg; ++c) {
      float* plane = z + (kj * cg + c) * len;
      const float* xc = x + c * hw;
      std::memset(plane, 0, static_cast<size_t>(lo) * sizeof(float));
      std::memcpy(plane + lo, xc + lo + shift, static_cast<size_t>(hi - lo) * sizeof(float));
      std::memset(plane + hi, 0, static_cast<size_t>(len - hi) * sizeof(float));
      if (s < 0) {
        const int64_t n = std::min(-s, w);
        for (int64_t i = 0; i < L.hq; ++i)
          for (int64_t j = 0; j < n; ++j) plane[i * w + j] = 0.0f;
      } else if (s > 0) {
        const int64_t from = std::max<int64_t>(w - s, 0);
        for (int64_t i = 0; i < L.hq; ++i)
          for (int64_t j = from; j < w; ++j) plane[i * w + j] = 0.0f;
      }
    }
  }
}

}  // namespace

void build_z(const Conv2dGeometry& g, const ZLayout& L, const float* x, float* z) {
  if (L.flat) return build_flat(g, L, x, z);
  const int64_t cg = g.c / g.groups, sh = g.stride_h, ow = g.ow;
  for (int64_t kj = 0; kj < g.kw; ++kj) {
    const int64_t s = kj * g.dil_w - g.pad_w;
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t ph = 0; ph < sh; ++ph)
        for (int64_t i = 0; i < L.hq; ++i) {
          float* dst = z + (((kj * cg + c) * sh + ph) * L.hq + i) * ow;
          const int64_t r = sh * i + ph - g.pad_h;
          if (r < 0 || r >= g.h) {
            std::memset(dst, 0, static_cast<size_t>(ow) * sizeof(float));
            continue;
          }
          sample_row(dst, ow, x + (c * g.h + r) * g.w, g.w, s, g.stride_w);
        }
  }
}

void transpose(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  int64_t i0 = 0;
#if defined(__AVX512F__)
  // 16 x 16 tiles through registers: unpack pairs, then 2x2 blocks of pairs, then 128-bit lanes.
  for (; i0 + 16 <= rows; i0 += 16)
    for (int64_t j0 = 0; j0 + 16 <= cols; j0 += 16) {
      __m512 r[16], t[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + (i0 + i) * lds + j0);
      for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
      }
      for (int i = 0; i < 4; ++i) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 8] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
      }
      for (int i = 0; i < 4; ++i) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 4], 0x88);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 8], t[i + 12], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 4], 0xdd);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 8], t[i + 12], 0xdd);
      }
      // Register i now holds column j0 + i of the tile.
      for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + (j0 + i) * ldd + i0, r[i]);
    }
  // The right edge of the full-height row bands.
  for (int64_t i = 0; i < i0; ++i)
    for (int64_t j = cols / 16 * 16; j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
#endif
  for (int64_t i = i0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
}

void channels_last_padded(const Conv2dGeometry& g, const float* x, float* xt) {
  const int64_t cg = g.c / g.groups, wp = g.w + 2 * g.pad_w, hp = g.h + 2 * g.pad_h;
  const size_t row = static_cast<size_t>(wp * cg) * sizeof(float), side = static_cast<size_t>(g.pad_w * cg) * sizeof(float);
  // Zero only the padding: the top and bottom rows, and the left and right margins.
  std::memset(xt, 0, static_cast<size_t>(g.pad_h) * row);
  std::memset(xt + (g.h + g.pad_h) * wp * cg, 0, static_cast<size_t>(hp - g.h - g.pad_h) * row);
  for (int64_t r = 0; r < g.h; ++r) {
    float* line = xt + (r + g.pad_h) * wp * cg;
    std::memset(line, 0, side);
    std::memset(line + (g.pad_w + g.w) * cg, 0, side);
    transpose(x + r * g.w, g.h * g.w, cg, g.w, line + g.pad_w * cg, cg);
  }
}

}  // namespace lowbit::cpu::conv_layout
