// The register-tile kernel behind the CPU convolution: one tile of a GEMM whose operands are
// found through offset tables (B rows, and optionally A and C rows), so convolutions read
// shifted input copies or channels-last images in place; AVX-512 or AVX2 + FMA where compiled
// for them (-march=native), else portable loops.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace lowbit::cpu::conv_tiles {

// C [MR rows, up to 16 * NV columns]:
//   C(i, j) = init(i, j) + sum_{k < K} A(i, k) * z[off[k] + j]     for i < mv, j < n.
struct Tile {
  int64_t K = 0;
  // A(i, k) = a[k * ldk + i] (a packed panel has ldk = MR), or a[arow[i] + k] when arow is set
  // (rows i >= mv are never read).
  const float* a = nullptr;
  int64_t ldk = 0;
  const int64_t* arow = nullptr;
  // B row k starts at z + off[k]; only its first n entries are read.
  const float* z = nullptr;
  const int64_t* off = nullptr;
  // C row i starts at c + crow[i] when crow is set, else at c + i * ldc. Rows are written in
  // order, so rows that overlap (scatter-adds) accumulate correctly.
  float* c = nullptr;
  int64_t ldc = 0;
  const int64_t* crow = nullptr;
  int mv = 0, n = 0;
  const float* bias = nullptr;  // init(i, j) = bias[i] (when set and not accumulating), else 0
  bool accumulate = false;      // init(i, j) = C(i, j)
};

template <int MR, int NV>
void gemm_tile(const Tile& t);

// The register tiles of this build: {MR, NV} shapes that fill the vector registers without
// spilling (AVX-512: 24 of its 32 zmm accumulate; AVX2: 12 of its 16 ymm, a 16-column group
// being two 8-float vectors), and the dot_tile shape.
struct TileDims {
  int mr, nv;
};
#if defined(__AVX512F__) || !(defined(__AVX2__) && defined(__FMA__))
inline constexpr bool kAvx2Tiles = false;
inline constexpr TileDims kTiles[] = {{6, 4}, {8, 3}, {12, 2}, {24, 1}};
inline constexpr int kDotRows = 4, kDotCols = 6;
#else
inline constexpr bool kAvx2Tiles = true;
inline constexpr TileDims kTiles[] = {{3, 2}, {6, 1}};
inline constexpr int kDotRows = 3, kDotCols = 4;
#endif

// Dot-product tile for reductions along contiguous rows (weight gradients of layers with few
// input channels), dw[MO rows, NK columns]:
//   dw[i * ldw + j] += sum over images m of sum_{p < P} dy[m][dy_off[i] + p] * z[m][off[j] + p]
// for i < mo, j < nk (dy_off and off hold MO and NK entries; entries past mo / nk repeat a
// valid row so every load stays in bounds).
template <int MO, int NK>
void dot_tile(int nimg, const float* const* dy, const float* const* z, int64_t P, const int64_t* dy_off,
              const int64_t* off, float* dw, int64_t ldw, int mo, int nk);

#if defined(__AVX512F__)

template <int MR, int NV>
void gemm_tile(const Tile& t) {
  __mmask16 m[NV];
  for (int j = 0; j < NV; ++j) {
    const int rem = t.n - 16 * j;
    m[j] = rem >= 16 ? static_cast<__mmask16>(0xffff) : rem <= 0 ? 0 : static_cast<__mmask16>((1u << rem) - 1);
  }
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  const float* ar[MR];
  if (t.arow)
    for (int i = 0; i < MR; ++i) ar[i] = t.a + t.arow[i < t.mv ? i : t.mv - 1];
  const float* a = t.a;
  const float* z = t.z;
  const int64_t* off = t.off;
  const int64_t K = t.K, ldk = t.ldk;
  auto run = [&](auto masked, auto rows) {
    for (int64_t k = 0; k < K; ++k) {
      const float* zk = z + off[k];
      __m512 b[NV];
      for (int j = 0; j < NV; ++j)
        b[j] = masked ? _mm512_maskz_loadu_ps(m[j], zk + 16 * j) : _mm512_loadu_ps(zk + 16 * j);
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(rows ? ar[i][k] : a[k * ldk + i]);
        for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, b[j], acc[i][j]);
      }
    }
  };
  // Masked loads keep a partial tile from reading past its rows, but run at half the rate
  // of plain loads on some cores (Zen 5), so full tiles use plain ones.
  const bool full = t.n >= 16 * NV;
  if (t.arow) {
    if (full) run(std::false_type{}, std::true_type{});
    else run(std::true_type{}, std::true_type{});
  } else {
    if (full) run(std::false_type{}, std::false_type{});
    else run(std::true_type{}, std::false_type{});
  }
  for (int i = 0; i < t.mv; ++i) {
    float* ci = t.c + (t.crow ? t.crow[i] : i * t.ldc);
    for (int j = 0; j < NV; ++j) {
      if (!m[j]) break;
      __m512 v = acc[i][j];
      if (m[j] == 0xffff) {  // plain loads and stores where the whole vector is in the tile (see above)
        if (t.accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(ci + 16 * j));
        else if (t.bias) v = _mm512_add_ps(v, _mm512_set1_ps(t.bias[i]));
        _mm512_storeu_ps(ci + 16 * j, v);
      } else {
        if (t.accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[j], ci + 16 * j));
        else if (t.bias) v = _mm512_add_ps(v, _mm512_set1_ps(t.bias[i]));
        _mm512_mask_storeu_ps(ci + 16 * j, m[j], v);
      }
    }
  }
}

template <int MO, int NK>
void dot_tile(int nimg, const float* const* dy, const float* const* z, int64_t P, const int64_t* dy_off,
              const int64_t* off, float* dw, int64_t ldw, int mo, int nk) {
  __m512 acc[MO][NK];
  for (int i = 0; i < MO; ++i)
    for (int j = 0; j < NK; ++j) acc[i][j] = _mm512_setzero_ps();
  const int64_t full = P / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (P - full)) - 1);
  for (int im = 0; im < nimg; ++im) {
    const float* dyr[MO];
    const float* zr[NK];
    for (int i = 0; i < MO; ++i) dyr[i] = dy[im] + dy_off[i];
    for (int j = 0; j < NK; ++j) zr[j] = z[im] + off[j];
    auto step = [&](int64_t p, auto masked) {
      __m512 b[NK];
      for (int j = 0; j < NK; ++j) b[j] = masked ? _mm512_maskz_loadu_ps(tail, zr[j] + p) : _mm512_loadu_ps(zr[j] + p);
      for (int i = 0; i < MO; ++i) {
        const __m512 d = masked ? _mm512_maskz_loadu_ps(tail, dyr[i] + p) : _mm512_loadu_ps(dyr[i] + p);
        for (int j = 0; j < NK; ++j) acc[i][j] = _mm512_fmadd_ps(d, b[j], acc[i][j]);
      }
    };
    for (int64_t p = 0; p < full; p += 16) step(p, std::false_type{});
    // Both operands masked to zero past P, so whatever lies beyond the rows never enters the sum.
    if (tail) step(full, std::true_type{});
  }
  for (int i = 0; i < mo; ++i)
    for (int j = 0; j < nk; ++j) dw[i * ldw + j] += _mm512_reduce_add_ps(acc[i][j]);
}

#elif defined(__AVX2__) && defined(__FMA__)

// Lanes [0, rem) of an 8-float vector (rem clamped to 0..8), as a maskload/maskstore mask.
inline __m256i lanes_below(int rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem < 0 ? 0 : rem > 8 ? 8 : rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The AVX-512 kernel's loops on 8-float vectors: each 16-column group is two of them.
template <int MR, int NV>
void gemm_tile(const Tile& t) {
  constexpr int NW = 2 * NV;
  __m256i m[NW];
  for (int w = 0; w < NW; ++w) m[w] = lanes_below(t.n - 8 * w);
  __m256 acc[MR][NW];
  for (int i = 0; i < MR; ++i)
    for (int w = 0; w < NW; ++w) acc[i][w] = _mm256_setzero_ps();
  const float* ar[MR];
  if (t.arow)
    for (int i = 0; i < MR; ++i) ar[i] = t.a + t.arow[i < t.mv ? i : t.mv - 1];
  const float* a = t.a;
  const float* z = t.z;
  const int64_t* off = t.off;
  const int64_t K = t.K, ldk = t.ldk;
  // Besides the MR * NW accumulators, either all B vectors of a step are live (then one A
  // broadcast at a time) or all A broadcasts (then one B vector): whichever is fewer, so the
  // accumulators stay in registers (one spilled accumulator made the 3x32 tile 3x slower).
  auto run = [&](auto masked, auto rows) {
    auto load_b = [&](const float* zk, int w) {
      return masked ? _mm256_maskload_ps(zk + 8 * w, m[w]) : _mm256_loadu_ps(zk + 8 * w);
    };
    for (int64_t k = 0; k < K; ++k) {
      const float* zk = z + off[k];
      if constexpr (MR < NW) {
        __m256 av[MR];
        for (int i = 0; i < MR; ++i) av[i] = _mm256_set1_ps(rows ? ar[i][k] : a[k * ldk + i]);
        for (int w = 0; w < NW; ++w) {
          const __m256 b = load_b(zk, w);
          for (int i = 0; i < MR; ++i) acc[i][w] = _mm256_fmadd_ps(av[i], b, acc[i][w]);
        }
      } else {
        __m256 b[NW];
        for (int w = 0; w < NW; ++w) b[w] = load_b(zk, w);
        for (int i = 0; i < MR; ++i) {
          const __m256 av = _mm256_set1_ps(rows ? ar[i][k] : a[k * ldk + i]);
          for (int w = 0; w < NW; ++w) acc[i][w] = _mm256_fmadd_ps(av, b[w], acc[i][w]);
        }
      }
    }
  };
  // Masked loads keep a partial tile from reading past its rows; full tiles use plain ones.
  const bool full = t.n >= 8 * NW;
  if (t.arow) {
    if (full) run(std::false_type{}, std::true_type{});
    else run(std::true_type{}, std::true_type{});
  } else {
    if (full) run(std::false_type{}, std::false_type{});
    else run(std::true_type{}, std::false_type{});
  }
  for (int i = 0; i < t.mv; ++i) {
    float* ci = t.c + (t.crow ? t.crow[i] : i * t.ldc);
    for (int w = 0; w < NW; ++w) {
      const int rem = t.n - 8 * w;
      if (rem <= 0) break;
      __m256 v = acc[i][w];
      if (rem >= 8) {
        if (t.accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(ci + 8 * w));
        else if (t.bias) v = _mm256_add_ps(v, _mm256_set1_ps(t.bias[i]));
        _mm256_storeu_ps(ci + 8 * w, v);
      } else {
        if (t.accumulate) v = _mm256_add_ps(v, _mm256_maskload_ps(ci + 8 * w, m[w]));
        else if (t.bias) v = _mm256_add_ps(v, _mm256_set1_ps(t.bias[i]));
        _mm256_maskstore_ps(ci + 8 * w, m[w], v);
      }
    }
  }
}

// The sum of the 8 lanes, in one fixed order.
inline float lanes_sum(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}

template <int MO, int NK>
void dot_tile(int nimg, const float* const* dy, const float* const* z, int64_t P, const int64_t* dy_off,
              const int64_t* off, float* dw, int64_t ldw, int mo, int nk) {
  __m256 acc[MO][NK];
  for (int i = 0; i < MO; ++i)
    for (int j = 0; j < NK; ++j) acc[i][j] = _mm256_setzero_ps();
  const int64_t full = P / 8 * 8;
  const __m256i tail = lanes_below(static_cast<int>(P - full));
  for (int im = 0; im < nimg; ++im) {
    const float* dyr[MO];
    const float* zr[NK];
    for (int i = 0; i < MO; ++i) dyr[i] = dy[im] + dy_off[i];
    for (int j = 0; j < NK; ++j) zr[j] = z[im] + off[j];
    auto step = [&](int64_t p, auto masked) {
      __m256 b[NK];
      for (int j = 0; j < NK; ++j) b[j] = masked ? _mm256_maskload_ps(zr[j] + p, tail) : _mm256_loadu_ps(zr[j] + p);
      for (int i = 0; i < MO; ++i) {
        const __m256 d = masked ? _mm256_maskload_ps(dyr[i] + p, tail) : _mm256_loadu_ps(dyr[i] + p);
        for (int j = 0; j < NK; ++j) acc[i][j] = _mm256_fmadd_ps(d, b[j], acc[i][j]);
      }
    };
    for (int64_t p = 0; p < full; p += 8) step(p, std::false_type{});
    // Both operands masked to zero past P, so whatever lies beyond the rows never enters the sum.
    if (P > full) step(full, std::true_type{});
  }
  for (int i = 0; i < mo; ++i)
    for (int j = 0; j < nk; ++j) dw[i * ldw + j] += lanes_sum(acc[i][j]);
}

#else  // portable versions: the same loops on scalars, left to the compiler to vectorise

template <int MR, int NV>
void gemm_tile(const Tile& t) {
  constexpr int NC = 16 * NV;
  float acc[MR][NC] = {};
  for (int64_t k = 0; k < t.K; ++k) {
    const float* zk = t.z + t.off[k];
    for (int i = 0; i < t.mv; ++i) {
      const float av = t.arow ? t.a[t.arow[i] + k] : t.a[k * t.ldk + i];
      for (int j = 0; j < t.n; ++j) acc[i][j] += av * zk[j];
    }
  }
  for (int i = 0; i < t.mv; ++i) {
    float* ci = t.c + (t.crow ? t.crow[i] : i * t.ldc);
    for (int j = 0; j < t.n; ++j) ci[j] = (t.accumulate ? ci[j] : t.bias ? t.bias[i] : 0.0f) + acc[i][j];
  }
}

template <int MO, int NK>
void dot_tile(int nimg, const float* const* dy, const float* const* z, int64_t P, const int64_t* dy_off,
              const int64_t* off, float* dw, int64_t ldw, int mo, int nk) {
  for (int i = 0; i < mo; ++i)
    for (int j = 0; j < nk; ++j) {
      float s = 0;
      for (int im = 0; im < nimg; ++im) {
        const float* d = dy[im] + dy_off[i];
        const float* b = z[im] + off[j];
        for (int64_t p = 0; p < P; ++p) s += d[p] * b[p];
      }
      dw[i * ldw + j] += s;
    }
}

#endif

}  // namespace lowbit::cpu::conv_tiles
