// The CUDA backend's runtime: error reporting, devices, streams, cuBLAS/cuDNN handles, copies.
#include <mutex>
#include <vector>

#include "common.cuh"
#include "runtime.h"

namespace lowbit::cuda {

namespace detail {
void throw_error(const char* lib, const char* message, const char* expr, const char* file, int line) {
  throw Error(lowbit::detail::cat(lib, " error: ", message, " in ", expr), lowbit::detail::cat(file, ":", line));
}
}  // namespace detail

int device_count() noexcept {
  // Asked once: without a driver the runtime answers cudaErrorNoDevice or
  // cudaErrorInsufficientDriver, which means "no GPU" here, never an exception.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky error so later checks do not report it
      return 0;
    }
    return n;
  }();
  return count;
}

namespace {

void check_device(int device, const char* where) {
  LOWBIT_CHECK(device >= 0 && device < device_count(), where, "no CUDA device ", device, " (this machine has ",
               device_count(), ")");
}

struct PerDevice {
  std::once_flag stream_once, cublas_once, cudnn_once;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
};

PerDevice& per_device(int device) {
  check_device(device, "cuda");
  // Leaked on purpose: handles must outlive static tensors freed after main returns.
  static auto* all = new std::vector<PerDevice>(static_cast<size_t>(device_count()));
  return (*all)[static_cast<size_t>(device)];
}

bool g_allow_tf32 = false;

}  // namespace

DeviceGuard::DeviceGuard(int device) {
  LOWBIT_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) LOWBIT_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) (void)cudaSetDevice(previous_);
}

cudaStream_t stream(int device) {
  PerDevice& d = per_device(device);
  std::call_once(d.stream_once, [&] {
    DeviceGuard g(device);
    LOWBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));
  });
  return d.stream;
}

cublasHandle_t cublas_handle(int device) {
  PerDevice& d = per_device(device);
  std::call_once(d.cublas_once, [&] {
    DeviceGuard g(device);
    LOWBIT_CUBLAS_CHECK(cublasCreate(&d.cublas));
    LOWBIT_CUBLAS_CHECK(cublasSetStream(d.cublas, stream(device)));
  });
  // The math mode follows allow_tf32() at every use, so the switch takes effect at once.
  LOWBIT_CUBLAS_CHECK(cublasSetMathMode(d.cublas, g_allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return d.cublas;
}

cudnnHandle_t cudnn_handle(int device) {
  PerDevice& d = per_device(device);
  std::call_once(d.cudnn_once, [&] {
    DeviceGuard g(device);
    LOWBIT_CUDNN_CHECK(cudnnCreate(&d.cudnn));
    LOWBIT_CUDNN_CHECK(cudnnSetStream(d.cudnn, stream(device)));
  });
  return d.cudnn;
}

void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

void synchronize(int device) {
  if (device < 0) LOWBIT_CUDA_CHECK(cudaGetDevice(&device));
  LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
}

void copy_across(const Tensor& src, Tensor& dst) {
  LOWBIT_CHECK(src.shape() == dst.shape() && src.dtype() == dst.dtype(), "Tensor::to", "copy of ",
               shape_str(src.shape()), " ", dtype_name(src.dtype()), " into ", shape_str(dst.shape()), " ",
               dtype_name(dst.dtype()));
  if (src.nbytes() == 0) return;
  // Queue on the stream of the device involved (the source's when both are GPUs, so the copy
  // follows the kernels that wrote it), then wait: the host may read or free its side next.
  const int dev = src.device().is_cuda() ? src.device().index : dst.device().index;
  DeviceGuard g(dev);
  cudaStream_t s = stream(dev);
  if (src.device().is_cuda() && dst.device().is_cuda() && src.device() != dst.device())
    LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream(dst.device().index)));
  LOWBIT_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(), cudaMemcpyDefault, s));
  LOWBIT_CUDA_CHECK(cudaStreamSynchronize(s));
}

Indexer make_indexer(const Shape& out, const Shape& in) {
  LOWBIT_CHECK(out.size() <= static_cast<size_t>(kMaxDims), "cuda", "tensors of more than ", kMaxDims,
               " dimensions are not supported on CUDA, got ", shape_str(out));
  Indexer ix;
  if (in == out) {
    ix.ndim = -1;
    return ix;
  }
  ix.ndim = static_cast<int>(out.size());
  const size_t shift = out.size() - in.size();
  int64_t stride = 1;
  for (size_t d = out.size(); d-- > 0;) {
    ix.dims[d] = out[d];
    if (d >= shift) {
      const int64_t n = in[d - shift];
      ix.strides[d] = n == 1 ? 0 : stride;
      stride *= n;
    }
  }
  return ix;
}

}  // namespace lowbit::cuda
