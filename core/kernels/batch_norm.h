// Batch-norm kernels: the interface each backend implements (cpu:: here, cuda:: beside it).
// x is [N, C, ...] seen as [N, C, S]; per-channel tensors are f32 [C]. An undefined weight
// means 1, an undefined bias 0; an undefined output is one the caller does not want.
#pragma once

#include "../tensor.h"

namespace lowbit {

// Batch mean and invstd = 1/sqrt(biased var + eps) of each channel. When running_mean and
// running_var are defined they are updated in place: r = (1 - momentum) r + momentum stat,
// with the unbiased variance (needs N*S > 1).
using BatchNormStatsKernel = void(const Tensor& x, double eps, double momentum, Tensor& running_mean,
                                  Tensor& running_var, Tensor& mean, Tensor& invstd);
// y = (x - mean) * invstd * weight + bias, then max(y, 0) when relu.
using BatchNormApplyKernel = void(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                                  const Tensor& bias, bool relu, Tensor& y);
// Gradients given dy, with xhat = (x - mean) * invstd and M = N*S:
//   training: dx = weight*invstd/M * (M dy - sum(dy) - xhat sum(dy xhat))
//   eval (mean, invstd constants): dx = dy * weight * invstd
//   dweight = sum(dy xhat), dbias = sum(dy)   (sums over all axes but 1)
// When relu_out (the output of a fused ReLU) is defined, dy is first replaced by
// dy * [relu_out > 0], the ReLU's backward.
using BatchNormBackwardKernel = void(bool training, const Tensor& dy, const Tensor& x, const Tensor& mean,
                                     const Tensor& invstd, const Tensor& weight, const Tensor& relu_out, Tensor& dx,
                                     Tensor& dweight, Tensor& dbias);

namespace cpu {
BatchNormStatsKernel batch_norm_stats;
BatchNormApplyKernel batch_norm_apply;
BatchNormBackwardKernel batch_norm_backward;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
BatchNormStatsKernel batch_norm_stats;
BatchNormApplyKernel batch_norm_apply;
BatchNormBackwardKernel batch_norm_backward;
}  // namespace cuda

}  // namespace lowbit
