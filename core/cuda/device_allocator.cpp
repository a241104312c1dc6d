// The CUDA caching allocator: size-bucketed free lists per device, so a training step
// calls cudaMalloc only until its working set has been seen once.
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.cuh"
#include "runtime.h"

namespace lowbit::cuda {
namespace {

// Four steps per power of two above 1 MiB (at most 25% waste), 512-byte steps below,
// like the host allocator; cudaMalloc itself aligns to 256 bytes.
size_t bucket_size(size_t bytes) {
  if (bytes <= 512) return 512;
  if (bytes <= (size_t{1} << 20)) return (bytes + 511) & ~size_t{511};
  size_t p = size_t{1} << (63 - __builtin_clzll(bytes - 1));
  size_t step = p / 4;
  return (bytes + step - 1) / step * step;
}

class DeviceCachingAllocator final : public Allocator {
 public:
  explicit DeviceCachingAllocator(int device) : device_(device) {}

  void* allocate(size_t bytes) override {
    const size_t size = bucket_size(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= size;
    } else {
      DeviceGuard g(device_);
      cudaError_t err = cudaMalloc(&p, size);
      if (err == cudaErrorMemoryAllocation) {
        // Give the cached blocks back and try once more before reporting.
        (void)cudaGetLastError();
        release_cached_locked();
        err = cudaMalloc(&p, size);
      }
      if (err != cudaSuccess) {
        (void)cudaGetLastError();
        throw Error(lowbit::detail::cat("out of memory allocating ", bytes, " bytes on cuda:", device_, " (",
                                        cudaGetErrorString(err), "; ", stats_.allocated_bytes,
                                        " bytes in use by lowbit)"),
                    "cuda allocator", "use a smaller batch size");
      }
      ++stats_.os_allocations;
    }
    stats_.allocated_bytes += size;
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
    return p;
  }

  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    const size_t size = bucket_size(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.allocated_bytes -= size;
    stats_.cached_bytes += size;
    free_[size].push_back(p);
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

 private:
  void release_cached_locked() {
    if (free_.empty()) return;
    DeviceGuard g(device_);
    // cudaFree synchronises the device, so no queued kernel still reads these blocks.
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) LOWBIT_CUDA_CHECK(cudaFree(p));
    free_.clear();
    stats_.cached_bytes = 0;
  }

  const int device_;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
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
