// Shape-op kernels: the interface each backend implements.
#pragma once

#include "../tensor.h"

namespace lowbit {

// out (already shaped) = x broadcast to out's shape.
using ExpandKernel = void(const Tensor& x, Tensor& out);

namespace cpu {
ExpandKernel expand;
}  // namespace cpu

}  // namespace lowbit
