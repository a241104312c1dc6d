// GEMM kernels: the row-major sgemm interface each backend implements (cpu:: here, cuda:: beside it).
#pragma once

#include <cstdint>

namespace lowbit {

// C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C, all row-major with leading
// dimensions lda/ldb/ldc; op(X) = X^T when trans_x (X then stored as [K, M] or [N, K]).
// beta == 0 never reads C, so C may hold garbage.
using SgemmKernel = void(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// `batch` independent sgemms; matrix i of A starts at A + i * stride_a (likewise B, C).
// A stride of 0 reuses one matrix for the whole batch (C's stride must not be 0).
using SgemmBatchedKernel = void(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B,
                                int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c);

namespace cpu {
SgemmKernel sgemm;
SgemmBatchedKernel sgemm_batched;
// The CPU GEMM in use: "openblas" or "eigen" (chosen on first use; LOWBIT_GEMM=eigen|blas forces it).
const char* gemm_backend_name();
// Switches the CPU GEMM ("eigen", "blas", or "" for the automatic choice), for tests and
// benchmarks that compare the two; not to be called while a GEMM runs.
void set_gemm_backend(const char* name);
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
SgemmKernel sgemm;
SgemmBatchedKernel sgemm_batched;
}  // namespace cuda

}  // namespace lowbit
