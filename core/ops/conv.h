// 2-D convolution (torch.nn.functional.conv2d): NCHW input, OIHW weight.
#pragma once

#include <array>
#include <cstdint>

#include "../tensor.h"

namespace lowbit {

struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};    // (h, w)
  std::array<int64_t, 2> padding{0, 0};   // zeros added on each side (h, w)
  std::array<int64_t, 2> dilation{1, 1};  // (h, w)
  int64_t groups = 1;
};

// y [N, O, OH, OW] = conv2d(x [N, C, H, W], w [O, C / groups, kh, kw]) + b [O] (b may be
// undefined), with OH = (H + 2 * pad_h - dil_h * (kh - 1) - 1) / stride_h + 1 and likewise OW.
// Differentiable in x, w and b.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), const Conv2dOptions& opt = {});

}  // namespace lowbit
