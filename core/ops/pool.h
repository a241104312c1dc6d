// 2-D pooling over NCHW (or CHW) f32 tensors: max, average, adaptive average, global average.
#pragma once

#include <array>
#include <cstdint>

#include "../tensor.h"

namespace lowbit {

// PyTorch's pooling arguments, (h, w) each. A zero stride means "equal to the kernel".
//   max_pool2d(x, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}})
//   max_pool2d(x, Pool2dOptions::square(2))
struct Pool2dOptions {
  std::array<int64_t, 2> kernel{1, 1};
  std::array<int64_t, 2> stride{0, 0};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};  // max_pool2d only
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg_pool2d only: padded zeros count in the divisor

  static Pool2dOptions square(int64_t kernel, int64_t stride = 0, int64_t padding = 0) {
    Pool2dOptions o;
    o.kernel = {kernel, kernel};
    o.stride = {stride, stride};
    o.padding = {padding, padding};
    return o;
  }
};

// Max over each window; padding never wins (it acts as -inf). NaN propagates.
// The gradient goes to the (first) arg-max of each window.
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt);
// Mean over each window (padding counts as zeros when count_include_pad).
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt);
// Output [.., out_h, out_w]; cell (i, j) averages rows [floor(i*H/out_h), ceil((i+1)*H/out_h))
// and the matching columns, as torch.nn.functional.adaptive_avg_pool2d.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
// Mean over each H x W plane: [N, C, H, W] -> [N, C, 1, 1].
Tensor global_avg_pool2d(const Tensor& x);

}  // namespace lowbit
