// Matrix products: matmul (batched, broadcasting) and linear (x w^T + b), on the GEMM kernels.
#pragma once

#include "../tensor.h"

namespace lowbit {

// numpy/torch matmul of f32 tensors:
//   [M, K] x [K, N] -> [M, N];
//   [..., M, K] x [..., K, N] -> [..., M, N], the batch dims broadcast (numpy rules);
//   a 1-D left operand is a row [1, K] and a 1-D right operand a column [K, 1], the added
//   axis dropped from the result (so [K] x [K] is a 0-d dot product).
Tensor matmul(const Tensor& a, const Tensor& b);

// y = x w^T + b as torch.nn.functional.linear: x [..., in], w [out, in], b [out] or
// undefined; y [..., out]. The bias is added in the GEMM itself (C starts as the bias).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// The CPU GEMM in use: "openblas" or "eigen". OpenBLAS is chosen unless its kernels are
// narrower than the CPU (OPENBLAS_CORETYPE=Haswell on an AVX-512 machine); the environment
// variable LOWBIT_GEMM=eigen|blas forces one.
const char* gemm_backend_name();

}  // namespace lowbit
