// The host caching allocator.
#include "allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "caching_allocator.h"
#include "error.h"
#ifdef LOWBIT_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace lowbit {
namespace {

// Sizes round up to one of four steps per power of two (at most 25% waste), so a
// block freed by one step fits the same request in the next; 64-byte aligned blocks.
class HostCachingAllocator final : public CachingAllocator {
 public:
  ~HostCachingAllocator() override { empty_cache(); }

 protected:
  size_t bucket_size(size_t bytes) const override { return bucket_round(bytes, 64, 4096); }
  void* raw_allocate(size_t size) override { return std::aligned_alloc(64, size); }
  void raw_free(void* p) override { std::free(p); }
  [[noreturn]] void out_of_memory(size_t bytes, const AllocatorStats&) override {
    throw Error(detail::cat("out of memory allocating ", bytes, " bytes"), "allocator");
  }
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
