// Register-tile choice, operand packing, offset tables and the packed indirect GEMM of the CPU convolution.
// GCC 12 flags _mm512_undefined_ps() inside its own AVX-512 headers (a false positive,
// GCC PR 105593); the pragma precedes every include so it covers them.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "conv_gemm.h"

#include <algorithm>

namespace lowbit::cpu::conv_gemm {

using conv_tiles::Tile;

TileShape pick_tile(int64_t M, int64_t N) {
  TileShape best{conv_tiles::kTiles[0].mr, conv_tiles::kTiles[0].nv};
  double best_cost = 0;
  for (const conv_tiles::TileDims& d : conv_tiles::kTiles) {
    const TileShape t{d.mr, d.nv};
    const double cost = static_cast<double>((M + t.mr - 1) / t.mr * t.mr) *
                        static_cast<double>((N + t.cols() - 1) / t.cols() * t.cols());
    if (best_cost == 0 || cost < best_cost) best = t, best_cost = cost;
  }
  return best;
}

// One instantiation per shape of conv_tiles::kTiles.
TileFn tile_fn(TileShape t) {
  if constexpr (conv_tiles::kAvx2Tiles) return t.nv == 2 ? &conv_tiles::gemm_tile<3, 2> : &conv_tiles::gemm_tile<6, 1>;
  switch (t.nv) {
    case 4: return &conv_tiles::gemm_tile<6, 4>;
    case 3: return &conv_tiles::gemm_tile<8, 3>;
    case 2: return &conv_tiles::gemm_tile<12, 2>;
    default: return &conv_tiles::gemm_tile<24, 1>;
  }
}

void pack_a(const float* src, int64_t M, int64_t K, bool transposed, int mr, float* out) {
  for (int64_t m0 = 0; m0 < M; m0 += mr)
    for (int64_t k = 0; k < K; ++k)
      for (int i = 0; i < mr; ++i) {
        const int64_t m = m0 + i;
        *out++ = m < M ? (transposed ? src[k * M + m] : src[m * K + k]) : 0.0f;
      }
}

Segments segments(const Conv2dGeometry& g) {
  const int64_t cg = g.c / g.groups;
  return g.dil_w == 1 ? Segments{g.kh, g.kw * cg} : Segments{g.kh * g.kw, cg};
}

std::vector<int64_t> pixel_offsets(const Conv2dGeometry& g) {
  const int64_t cg = g.c / g.groups, wp = g.w + 2 * g.pad_w;
  std::vector<int64_t> off(static_cast<size_t>(g.oh * g.ow));
  for (int64_t p = 0; p < g.oh * g.ow; ++p)
    off[static_cast<size_t>(p)] = (g.stride_h * (p / g.ow) * wp + g.stride_w * (p % g.ow)) * cg;
  return off;
}

std::vector<float> weight_tap_major(const Conv2dGeometry& g, const float* w, bool k_major) {
  const int64_t cg = g.c / g.groups, og = g.o / g.groups, kk = g.kh * g.kw, K = cg * kk;
  std::vector<float> out(static_cast<size_t>(g.o * K));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t o = 0; o < og; ++o)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t tap = 0; tap < kk; ++tap) {
          const int64_t kp = tap * cg + c;
          out[static_cast<size_t>(grp * og * K + (k_major ? kp * og + o : o * K + kp))] =
              w[((grp * og + o) * cg + c) * kk + tap];
        }
  return out;
}

std::vector<int64_t> strided_offsets(int64_t n, int64_t stride) {
  std::vector<int64_t> off(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) off[static_cast<size_t>(i)] = i * stride;
  return off;
}

void indirect_gemm(const float* a, int64_t M, int64_t K, TileShape ts, const float* z, const int64_t* off, int64_t P,
                   float* c, int64_t ldc, const float* bias) {
  const TileFn fn = tile_fn(ts);
  const int64_t mpad = padded_rows(M, ts.mr);
  const int64_t kc = mpad * K <= (1 << 17) ? K : std::max<int64_t>(64, (1 << 17) / mpad / 8 * 8);
  Tile t;
  t.ldk = ts.mr;
  t.z = z;
  t.ldc = ldc;
  for (int64_t kb = 0; kb < K; kb += kc) {
    t.K = std::min(kc, K - kb);
    t.off = off + kb;
    t.accumulate = kb > 0;
    for (int64_t p0 = 0; p0 < P; p0 += ts.cols())
      for (int64_t m0 = 0; m0 < M; m0 += ts.mr) {
        t.a = a + m0 * K + kb * ts.mr;
        t.z = z + p0;
        t.c = c + m0 * ldc + p0;
        t.mv = narrow(std::min<int64_t>(ts.mr, M - m0));
        t.n = narrow(std::min(ts.cols(), P - p0));
        t.bias = bias && kb == 0 ? bias + m0 : nullptr;
        fn(t);
      }
  }
}

}  // namespace lowbit::cpu::conv_gemm
