// Internals of the CPU convolution shared by its forward (conv.cpp) and gradients
// (conv_backward.cpp): register-tile choice, operand packing and offset tables, the packed
// indirect GEMM, and the paths themselves.
#pragma once

#include <cstdint>
#include <vector>

#include "../kernels/conv.h"
#include "conv_tiles.h"

namespace lowbit::cpu::conv_gemm {

// Register tile: MR rows by 16 * NV columns (the shapes of conv_tiles::kTiles).
struct TileShape {
  int mr, nv;
  int64_t cols() const { return 16 * nv; }
};
using TileFn = void (*)(const conv_tiles::Tile&);

// The shape that wastes the least on partial tiles of an M x N result (AVX-512: e.g. 6 x 64 for an
// 8x8 image, 8 x 48 for 16 output channels).
TileShape pick_tile(int64_t M, int64_t N);
TileFn tile_fn(TileShape t);
inline int64_t padded_rows(int64_t M, int mr) { return (M + mr - 1) / mr * mr; }
inline int narrow(int64_t v) { return static_cast<int>(v); }

// out = A [M, K] in panels of mr rows, k-major within a panel, zero rows past M.
// A[m][k] = src[m * K + k], or src[k * M + m] when `transposed`.
void pack_a(const float* src, int64_t M, int64_t K, bool transposed, int mr, float* out);

// The taps of one kernel row that sit next to each other in a channels-last padded image:
// all kw taps (kw * cg floats) when dil_w == 1, else one tap (cg floats) per segment.
struct Segments {
  int64_t count, len;
  int64_t base(const Conv2dGeometry& g, int64_t s, int64_t wp, int64_t cg) const {  // offset in the image
    const int64_t ki = count == g.kh ? s : s / g.kw, kj = count == g.kh ? 0 : s % g.kw;
    return (ki * g.dil_h * wp + kj * g.dil_w) * cg;
  }
  int64_t first_tap(const Conv2dGeometry& g, int64_t s) const { return count == g.kh ? s * g.kw : s; }
};
Segments segments(const Conv2dGeometry& g);

// Where output pixel p's window starts in the channels-last padded image.
std::vector<int64_t> pixel_offsets(const Conv2dGeometry& g);
// w [o][c][tap] of each group as [k' = tap * cg + c][o] (k_major) or [o][k'] (rows).
std::vector<float> weight_tap_major(const Conv2dGeometry& g, const float* w, bool k_major);
// {0, stride, 2 * stride, ...}, n entries.
std::vector<int64_t> strided_offsets(int64_t n, int64_t stride);

// c [M, P] (row stride ldc) = A · B (+ bias per row), A packed, B row k at z + off[k]. K is
// split in blocks whose A panels stay in L2; later blocks accumulate onto c.
void indirect_gemm(const float* a, int64_t M, int64_t K, TileShape ts, const float* z, const int64_t* off, int64_t P,
                   float* c, int64_t ldc, const float* bias);

// The paths (raw NCHW buffers; bias may be null).
void forward_shifted(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
void forward_channels_last(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
void data_grad_as_conv(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
void data_grad_channels_last(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
void data_grad_direct(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
void weight_grad(const Conv2dGeometry& g, const float* dy, const float* x, float* dw);
void weight_grad_dots(const Conv2dGeometry& g, const float* dy, const float* x, float* dw);
void bias_grad(const Conv2dGeometry& g, const float* dy, float* db);

}  // namespace lowbit::cpu::conv_gemm
