// Pooling kernels: the interface each backend implements (cpu:: here, cuda:: beside it).
#pragma once

#include <cstdint>

#include "../tensor.h"

namespace lowbit {

// `planes` independent in_h x in_w planes (N*C of NCHW) pooled to out_h x out_w.
// Window (oh, ow) reads rows oh*stride_h - pad_h + i*dilation_h, i in [0, kernel_h), and
// likewise for columns. Adaptive pooling reads only planes and the in/out sizes.
struct Pool2dGeometry {
  int64_t planes = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
};

// x [planes, in_h, in_w] -> y [planes, out_h, out_w], index (i32, y's shape) = h*in_w + w
// of each window's max within its plane (-1 for a window holding no input element).
using MaxPool2dKernel = void(const Pool2dGeometry& g, const Tensor& x, Tensor& y, Tensor& index);
// dx [planes, in_h, in_w] (zero-filled here) += dy at each index.
using MaxPool2dBackwardKernel = void(const Pool2dGeometry& g, const Tensor& dy, const Tensor& index, Tensor& dx);
// x -> y, the mean over each window (divisor per torch's count_include_pad rule).
using AvgPool2dKernel = void(const Pool2dGeometry& g, bool count_include_pad, const Tensor& x, Tensor& y);
// dx (zero-filled here) += dy / divisor over each window.
using AvgPool2dBackwardKernel = void(const Pool2dGeometry& g, bool count_include_pad, const Tensor& dy, Tensor& dx);
// x -> y with torch's adaptive bins; the backward spreads dy / bin size over each bin.
using AdaptiveAvgPool2dKernel = void(const Pool2dGeometry& g, const Tensor& x, Tensor& y);
using AdaptiveAvgPool2dBackwardKernel = void(const Pool2dGeometry& g, const Tensor& dy, Tensor& dx);

namespace cpu {
MaxPool2dKernel max_pool2d;
MaxPool2dBackwardKernel max_pool2d_backward;
AvgPool2dKernel avg_pool2d;
AvgPool2dBackwardKernel avg_pool2d_backward;
AdaptiveAvgPool2dKernel adaptive_avg_pool2d;
AdaptiveAvgPool2dBackwardKernel adaptive_avg_pool2d_backward;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
MaxPool2dKernel max_pool2d;
MaxPool2dBackwardKernel max_pool2d_backward;
AvgPool2dKernel avg_pool2d;
AvgPool2dBackwardKernel avg_pool2d_backward;
AdaptiveAvgPool2dKernel adaptive_avg_pool2d;
AdaptiveAvgPool2dBackwardKernel adaptive_avg_pool2d_backward;
}  // namespace cuda

}  // namespace lowbit
