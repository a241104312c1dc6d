// Shared by the CUDA backend's sources: error checks, the per-device stream and library
// handles, launch sizes, and the broadcast indexer of element-wise kernels.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>

#include "../error.h"
#include "../tensor.h"

// Each throws lowbit::Error naming file:line, the call, and the library's own error string.
#define LOWBIT_CUDA_CHECK(expr)                                                                     \
  do {                                                                                              \
    cudaError_t lowbit_err_ = (expr);                                                               \
    if (lowbit_err_ != cudaSuccess)                                                                 \
      ::lowbit::cuda::detail::throw_error("CUDA", cudaGetErrorString(lowbit_err_), #expr, __FILE__, __LINE__); \
  } while (0)
#define LOWBIT_CUBLAS_CHECK(expr)                                                                   \
  do {                                                                                              \
    cublasStatus_t lowbit_st_ = (expr);                                                             \
    if (lowbit_st_ != CUBLAS_STATUS_SUCCESS)                                                        \
      ::lowbit::cuda::detail::throw_error("cuBLAS", cublasGetStatusString(lowbit_st_), #expr, __FILE__, __LINE__); \
  } while (0)
#define LOWBIT_CUDNN_CHECK(expr)                                                                    \
  do {                                                                                              \
    cudnnStatus_t lowbit_st_ = (expr);                                                              \
    if (lowbit_st_ != CUDNN_STATUS_SUCCESS)                                                         \
      ::lowbit::cuda::detail::throw_error("cuDNN", cudnnGetErrorString(lowbit_st_), #expr, __FILE__, __LINE__); \
  } while (0)
// After every kernel launch (launch errors are only reported by the next runtime call).
#define LOWBIT_CUDA_LAUNCH_CHECK() LOWBIT_CUDA_CHECK(cudaGetLastError())

namespace lowbit::cuda {

namespace detail {
[[noreturn]] void throw_error(const char* lib, const char* message, const char* expr, const char* file, int line);
}  // namespace detail

// Makes `device` current for the guard's lifetime (kernels launch on the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// The one stream per device that all of lowbit's work on that device is queued on.
cudaStream_t stream(int device);
// Library handles per device, created on first use and bound to stream(device).
cublasHandle_t cublas_handle(int device);
cudnnHandle_t cudnn_handle(int device);

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 32 ? 65535 * 32 : b));
}

// Up to kMaxDims axes; an element-wise kernel maps its flat output index to an input offset.
constexpr int kMaxDims = 8;
struct Indexer {
  int ndim = 0;                    // -1: the input has the output's shape (flat index = offset)
  int64_t dims[kMaxDims] = {};     // output shape
  int64_t strides[kMaxDims] = {};  // input strides over the output shape (0 on broadcast axes)

  __host__ __device__ int64_t operator()(int64_t flat) const {
    if (ndim < 0) return flat;
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      off += (flat % dims[d]) * strides[d];
      flat /= dims[d];
    }
    return off;
  }
};
// The indexer reading an input of shape `in` broadcast to `out` (right-aligned, numpy rules).
Indexer make_indexer(const Shape& out, const Shape& in);

}  // namespace lowbit::cuda
