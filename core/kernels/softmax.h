// Softmax-family kernels: the interface each backend implements.
#pragma once

#include "../tensor.h"

namespace lowbit {

// Every kernel views its f32 tensors as [outer, n, inner] with `axis` (normalised) the
// middle one, and normalises over n.
// y = softmax(x) or, when `log`, log_softmax(x), shifted by the slice maximum.
using SoftmaxKernel = void(bool log, const Tensor& x, int64_t axis, Tensor& y);
// From y and dy: softmax dx = y * (dy - sum(dy * y)); log_softmax dx = dy - exp(y) * sum(dy).
using SoftmaxBackwardKernel = void(bool log, const Tensor& dy, const Tensor& y, int64_t axis, Tensor& dx);

namespace cpu {
SoftmaxKernel softmax;
SoftmaxBackwardKernel softmax_backward;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
SoftmaxKernel softmax;
SoftmaxBackwardKernel softmax_backward;
}  // namespace cuda

}  // namespace lowbit
