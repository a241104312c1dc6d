// CUDA GEMM on cuBLAS: row-major C = op(A) op(B) computed as the column-major C^T = op(B)^T op(A)^T.
// Full f32 unless set_allow_tf32(true) (see runtime.h).
#include <climits>

#include "../kernels/gemm.h"
#include "common.cuh"
#include "runtime.h"

namespace lowbit::cuda {
namespace {

int as_int(int64_t v, const char* what) {
  LOWBIT_CHECK(v >= 0 && v <= INT_MAX, "cuda sgemm", what, " = ", v, " is beyond cuBLAS's 32-bit sizes");
  return static_cast<int>(v);
}

// The kernels get raw pointers; the device is the one C lives on.
int device_of(const void* p) {
  cudaPointerAttributes attr{};
  LOWBIT_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  LOWBIT_CHECK(attr.type == cudaMemoryTypeDevice, "cuda sgemm", "the output is not in CUDA device memory");
  return attr.device;
}

}  // namespace

// C[M, N] = alpha op(A)[M, K] op(B)[K, N] + beta C (row-major, leading dimensions lda/ldb/ldc).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const int dev = device_of(C);
  DeviceGuard g(dev);
  LOWBIT_CUBLAS_CHECK(cublasSgemm(cublas_handle(dev), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(N, "N"), as_int(M, "M"), as_int(K, "K"),
                                  &alpha, B, as_int(ldb, "ldb"), A, as_int(lda, "lda"), &beta, C, as_int(ldc, "ldc")));
}

void sgemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b,
                   float beta, float* C, int64_t ldc, int64_t stride_c) {
  if (batch == 0 || M == 0 || N == 0) return;
  const int dev = device_of(C);
  DeviceGuard g(dev);
  LOWBIT_CUBLAS_CHECK(cublasSgemmStridedBatched(
      cublas_handle(dev), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(N, "N"),
      as_int(M, "M"), as_int(K, "K"), &alpha, B, as_int(ldb, "ldb"), stride_b, A, as_int(lda, "lda"), stride_a, &beta,
      C, as_int(ldc, "ldc"), stride_c, as_int(batch, "batch")));
}

}  // namespace lowbit::cuda
