// Data layouts behind the CPU convolution: the per-image "B" operand of the stride-1 GEMM
// (shifted copies of the input, 3x the input for a 3x3 conv instead of im2col's 9x) and the
// channels-last padded image the strided forward, the data and the weight gradients read.
#pragma once

#include <cstdint>
#include <vector>

#include "../kernels/conv.h"

namespace lowbit::cpu::conv_layout {

// For one image and one group, B row k = (c * kh + ki) * kw + kj (the weight's own order) is
// the input tap (c, ki, kj) over all output pixels p = oh * ow_count + ow, stored at
// z + off[k] as P = oh * ow consecutive floats. z holds, for each (kj, c, row phase ph < stride_h),
// the rows i of the padded input sh * i + ph, sampled at columns sw * ow + kj * dil_w; tap
// (c, ki, kj) is then the plane (kj, c, (ki * dil_h) % sh) from row (ki * dil_h) / sh on.
struct ZLayout {
  bool direct = false;        // 1x1, stride 1, no padding: B rows are the input's channel planes
  bool flat = false;          // stride 1 and output width == input width: planes are flat shifted copies
  int64_t hq = 0;             // rows per (kj, c, phase) plane
  int64_t size = 0;           // floats per image and group (0 when direct)
  std::vector<int64_t> off;   // per k: where B row k starts
};

ZLayout make_z_layout(const Conv2dGeometry& g);

// Fills z (layout.size floats) from x: one image's channels of one group, [c / groups, h, w].
void build_z(const Conv2dGeometry& g, const ZLayout& layout, const float* x, float* z);

// xt [h + 2 pad_h, w + 2 pad_w, c / groups] = x [c / groups, h, w] channels-last, zero-padded.
// Row p of im2row, for kernel row ki, is then kw * (c / groups) consecutive floats of xt when
// dil_w == 1 (taps kj, channels c), which the weight gradient reads in place.
void channels_last_padded(const Conv2dGeometry& g, const float* x, float* xt);

// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols (16 x 16 register tiles where possible).
void transpose(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd);

}  // namespace lowbit::cpu::conv_layout
