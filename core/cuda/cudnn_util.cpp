// cuDNN helpers of the CUDA backend and the deterministic-mode switch (see runtime.h).
#include "cudnn_util.h"

#include <algorithm>
#include <atomic>

#include "runtime.h"

namespace lowbit::cuda {
namespace {
// On by default: lowbit promises the same run for the same seed (docs/cuda.md).
std::atomic<bool> g_deterministic{true};
}  // namespace

void set_deterministic(bool on) { g_deterministic = on; }
bool deterministic() { return g_deterministic; }

int cudnn_int(int64_t v, const char* what, const char* where) {
  LOWBIT_CHECK(v >= 0 && v <= INT_MAX, where, what, " = ", v, " is beyond cuDNN's 32-bit sizes");
  return static_cast<int>(v);
}

void set_nchw(const TensorDescriptor& d, int64_t n, int64_t c, int64_t h, int64_t w, const char* where) {
  // cuDNN addresses elements with int strides, so the whole tensor must fit too.
  cudnn_int(n * c * h * w, "the element count", where);
  LOWBIT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cudnn_int(n, "N", where),
                                                cudnn_int(c, "C", where), cudnn_int(h, "H", where),
                                                cudnn_int(w, "W", where)));
}

cudnnMathType_t conv_math_type() { return allow_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; }

Tensor workspace(int device, size_t bytes) {
  if (bytes == 0) return Tensor();
  return Tensor::empty({static_cast<int64_t>(bytes)}, DType::u8, Device::cuda(device));
}

size_t workspace_limit(int device) {
  constexpr size_t kCap = size_t{1} << 30;
  DeviceGuard g(device);
  size_t free_bytes = 0, total = 0;
  LOWBIT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  // Blocks cached by lowbit's allocator are free to lowbit too, though not to the driver.
  const size_t cached = device_allocator(device).stats().cached_bytes;
  return std::min(kCap, (free_bytes + cached) / 2);
}

}  // namespace lowbit::cuda
