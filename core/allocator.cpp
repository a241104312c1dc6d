// The host caching allocator.
#include "allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "error.h"
#ifdef LOWBIT_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace lowbit {
namespace {

// Sizes round up to one of four steps per power of two (at most 25% waste), so a
// block freed by one step fits the same request in the next.
size_t bucket_size(size_t bytes) {
  if (bytes <= 64) return 64;
  if (bytes <= 4096) return (bytes + 63) & ~size_t{63};
  size_t p = size_t{1} << (63 - __builtin_clzll(bytes - 1));  // largest power of two < bytes
  size_t step = p / 4;
  return (bytes + step - 1) / step * step;
}

class HostCachingAllocator final : public Allocator {
 public:
  ~HostCachingAllocator() override { empty_cache(); }

  void* allocate(size_t bytes) override {
    size_t size = bucket_size(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= size;
    } else {
      p = std::aligned_alloc(64, size);
      if (!p) {
        release_cached_locked();
        p = std::aligned_alloc(64, size);
      }
      if (!p) throw Error(detail::cat("out of memory allocating ", bytes, " bytes"), "allocator");
      ++stats_.os_allocations;
    }
    stats_.allocated_bytes += size;
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
    return p;
  }

  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    size_t size = bucket_size(bytes);
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
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    stats_.cached_bytes = 0;
  }

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

Allocator* g_allocators[kNumDeviceKinds] = {};

}  // namespace

void register_allocator(DeviceKind kind, Allocator* a) { g_allocators[static_cast<int>(kind)] = a; }

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) {
    // Intentionally leaked: tensors in static objects may be freed after main returns.
    static auto* host = new HostCachingAllocator();
    return *host;
  }
#ifdef LOWBIT_WITH_CUDA
  return cuda::device_allocator(d.index);
#else
  Allocator* a = g_allocators[static_cast<int>(d.kind)];
  if (!a) throw Error("no allocator for device " + d.str(), "allocator", "lowbit was built without this backend");
  return *a;
#endif
}

}  // namespace lowbit
