// Convolution kernels: the interface each backend implements (cpu:: here, cuda:: beside it).
#pragma once

#include <cstdint>

#include "../tensor.h"

namespace lowbit {

// The resolved geometry of one conv2d call (the op checks it before any kernel runs).
struct Conv2dGeometry {
  int64_t n, c, h, w;   // input [n, c, h, w]
  int64_t o, kh, kw;    // weight [o, c / groups, kh, kw]
  int64_t oh, ow;       // output [n, o, oh, ow]
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
};

// y [n, o, oh, ow] = conv(x [n, c, h, w], w [o, c/groups, kh, kw]) + bias [o] (bias may be undefined).
using Conv2dForwardKernel = void(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias,
                                 Tensor& y);
// From dy [n, o, oh, ow]: dx (reads w), dw (reads x), db; each computed only when its pointer is
// non-null, into a tensor already shaped like x, w and [o].
using Conv2dBackwardKernel = void(const Conv2dGeometry& g, const Tensor& dy, const Tensor& x, const Tensor& w,
                                  Tensor* dx, Tensor* dw, Tensor* db);

namespace cpu {
Conv2dForwardKernel conv2d_forward;
Conv2dBackwardKernel conv2d_backward;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
Conv2dForwardKernel conv2d_forward;
Conv2dBackwardKernel conv2d_backward;
}  // namespace cuda

}  // namespace lowbit
