// Dropout kernels: the interface each backend implements (cpu:: here, cuda:: beside it).
#pragma once

#include <cstdint>

#include "../rng.h"
#include "../tensor.h"

namespace lowbit {

// y[i] = u_i < p ? 0 : x[i] * scale, where u_i = uint_to_unit(gen.block(base + i/4)[i % 4]);
// mask (u8, x's shape; skipped when undefined) receives 1 where x[i] was kept.
using DropoutKernel = void(const Tensor& x, Tensor& y, Tensor& mask, const Generator& gen, uint64_t base, float p,
                           float scale);
// dx = dy * mask * scale.
using DropoutBackwardKernel = void(const Tensor& dy, const Tensor& mask, float scale, Tensor& dx);

namespace cpu {
DropoutKernel dropout;
DropoutBackwardKernel dropout_backward;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
DropoutKernel dropout;
DropoutBackwardKernel dropout_backward;
}  // namespace cuda

}  // namespace lowbit
