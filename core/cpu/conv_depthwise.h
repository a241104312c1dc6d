// Direct depthwise convolution (groups == c == o): one kh x kw filter per channel, where the
// GEMM formulation would have one-row tiles.
#pragma once

#include "../kernels/conv.h"

namespace lowbit::cpu::conv_depthwise {

inline bool applies(const Conv2dGeometry& g) { return g.groups == g.c && g.o == g.c && g.c > 1; }

// y = conv(x, w) + bias (bias may be null); raw NCHW / [c, 1, kh, kw] buffers.
void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
// dx from dy and w; dw from dy and x (either may be null).
void backward(const Conv2dGeometry& g, const float* dy, const float* x, const float* w, float* dx, float* dw);

}  // namespace lowbit::cpu::conv_depthwise
