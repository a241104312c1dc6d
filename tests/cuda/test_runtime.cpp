// The CUDA runtime layer: device queries and error checks (run everywhere), the caching
// allocator and host<->device copies ([gpu]: skipped where no GPU is present).
#include <catch2/catch.hpp>

#include "core/cuda/common.cuh"
#include "core/cuda/runtime.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "cuda/need_gpu.h"
#include "support/test_util.h"

using namespace lowbit;

TEST_CASE("cuda device_count never throws, with or without a driver", "[cuda]") {
  int n = -1;
  REQUIRE_NOTHROW(n = cuda::device_count());
  CHECK(n >= 0);
  CHECK(cuda::is_available() == (n > 0));
}

TEST_CASE("cuda check macros throw lowbit::Error with file:line and the library's message", "[cuda]") {
  try {
    LOWBIT_CUDA_CHECK(cudaErrorInvalidValue);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.where().find("test_runtime.cpp:") != std::string::npos);
    CHECK(std::string(e.what()).find(cudaGetErrorString(cudaErrorInvalidValue)) != std::string::npos);
    CHECK(std::string(e.what()).find("cudaErrorInvalidValue") != std::string::npos);  // the failing call
  }
  try {
    LOWBIT_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.where().find("test_runtime.cpp:") != std::string::npos);
    CHECK(std::string(e.what()).find("cuBLAS") != std::string::npos);
  }
  try {
    LOWBIT_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("cuDNN") != std::string::npos);
    CHECK(std::string(e.what()).find(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM)) != std::string::npos);
  }
  CHECK_NOTHROW([] { LOWBIT_CUDA_CHECK(cudaSuccess); }());
}

TEST_CASE("cuda tensors on a missing device are a clear error", "[cuda]") {
  const int n = cuda::device_count();
  const std::string msg = test::error_of([&] { (void)Tensor::empty({4}, DType::f32, Device::cuda(n)); });
  CHECK(msg.find("no CUDA device " + std::to_string(n)) != std::string::npos);
}

TEST_CASE("cuda allocator reuses freed blocks and reports peak bytes", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  Allocator& a = cuda::device_allocator(0);
  a.empty_cache();
  a.reset_peak();
  const AllocatorStats s0 = a.stats();
  void* p = a.allocate(1000);
  void* q = a.allocate(3 << 20);
  const AllocatorStats s1 = a.stats();
  CHECK(s1.allocated_bytes >= s0.allocated_bytes + 1000 + (3 << 20));
  CHECK(s1.peak_allocated_bytes == s1.allocated_bytes);
  a.deallocate(p, 1000);
  void* p2 = a.allocate(1000);  // same bucket: the cached block comes back, no cudaMalloc
  CHECK(p2 == p);
  CHECK(a.stats().os_allocations == s1.os_allocations);
  a.deallocate(p2, 1000);
  a.deallocate(q, 3 << 20);
  const AllocatorStats s2 = a.stats();
  CHECK(s2.allocated_bytes == s0.allocated_bytes);
  CHECK(s2.peak_allocated_bytes == s1.peak_allocated_bytes);
  CHECK(s2.cached_bytes >= 1000 + (3 << 20));
  a.empty_cache();
  CHECK(a.stats().cached_bytes == 0);
}

TEST_CASE("cuda a training-like loop stops calling cudaMalloc after its first step", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  Allocator& a = cuda::device_allocator(0);
  Generator gen(3);
  Tensor w = Tensor::randn({256, 256}, gen).to(Device::cuda());
  uint64_t after_first = 0;
  for (int step = 0; step < 4; ++step) {
    Tensor x = Tensor::randn({64, 256}, gen).to(Device::cuda());
    Tensor y = x.to(Device::cpu());  // round trip keeps the sizes of a step
    (void)y;
    Tensor z = Tensor::full({64, 256}, 1.5, DType::f32, Device::cuda());
    if (step == 0) after_first = a.stats().os_allocations;
  }
  CHECK(a.stats().os_allocations == after_first);
}

TEST_CASE("cuda Tensor::to copies every dtype to the device and back", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  Generator gen(1);
  Tensor f = Tensor::randn({3, 5}, gen);
  Tensor back = f.to(Device::cuda()).to(Device::cpu());
  CHECK(back.device() == Device::cpu());
  CHECK(back.to_vector<float>() == f.to_vector<float>());
  for (DType t : {DType::i64, DType::i32, DType::u8, DType::i8}) {
    Tensor x = Tensor::arange(0, 17, 1, t);
    Tensor d = x.to(Device::cuda());
    CHECK(d.device() == Device::cuda());
    CHECK(d.dtype() == t);
    CHECK(d.to_vector<int64_t>() == x.to_vector<int64_t>());
  }
  Tensor empty = Tensor::empty({0, 4}).to(Device::cuda());
  CHECK(empty.numel() == 0);
  CHECK(Tensor::full({2, 2}, 7.0, DType::i32, Device::cuda()).to_vector<int>() == std::vector<int>{7, 7, 7, 7});
  CHECK(Tensor::full({}, 2.5, DType::f32, Device::cuda()).item() == 2.5);
}
