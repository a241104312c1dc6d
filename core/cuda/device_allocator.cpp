// The CUDA caching allocator: size-bucketed free lists per device, so a training step
// calls cudaMalloc only until its working set has been seen once.
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "../caching_allocator.h"
#include "common.cuh"
#include "runtime.h"

namespace lowbit::cuda {
namespace {

// Four steps per power of two above 1 MiB (at most 25% waste), 512-byte steps below, like
// the host allocator; cudaMalloc itself aligns to 256 bytes. Freed blocks are reused without
// events: all of a device's work runs on its one stream, in order.
class DeviceCachingAllocator final : public CachingAllocator {
 public:
  explicit DeviceCachingAllocator(int device) : device_(device) {}

 protected:
  size_t bucket_size(size_t bytes) const override { return bucket_round(bytes, 512, size_t{1} << 20); }

  void* raw_allocate(size_t size) override {
    DeviceGuard g(device_);
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaSuccess) return p;
    (void)cudaGetLastError();
    if (err == cudaErrorMemoryAllocation) return nullptr;  // the caller frees the cache and retries
    LOWBIT_CUDA_CHECK(err);
    return nullptr;
  }

  // cudaFree synchronises the device, so no queued kernel still reads the block.
  void raw_free(void* p) override {
    DeviceGuard g(device_);
    LOWBIT_CUDA_CHECK(cudaFree(p));
  }

  [[noreturn]] void out_of_memory(size_t bytes, const AllocatorStats& stats) override {
    throw Error(lowbit::detail::cat("out of memory allocating ", bytes, " bytes on cuda:", device_, " (",
                                    stats.allocated_bytes, " bytes in use by lowbit)"),
                "cuda allocator", "use a smaller batch size");
  }

 private:
  const int device_;
};

}  // namespace

Allocator& device_allocator(int device) {
  LOWBIT_CHECK(device >= 0 && device < device_count(), "cuda allocator", "no CUDA device ", device,
               " (this machine has ", device_count(), ")",
               device_count() == 0 ? "; is a GPU and its driver present?" : "");
  // Leaked on purpose, as the host allocator: static tensors may be freed after main returns.
  static auto* all = [] {
    auto* v = new std::vector<std::unique_ptr<DeviceCachingAllocator>>();
    for (int d = 0; d < device_count(); ++d) v->push_back(std::make_unique<DeviceCachingAllocator>(d));
    return v;
  }();
  return *(*all)[static_cast<size_t>(device)];
}

}  // namespace lowbit::cuda
