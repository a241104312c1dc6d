// CachingAllocator: the free lists, the retry after releasing the cache, the statistics.
#include "caching_allocator.h"

namespace lowbit {

size_t bucket_round(size_t bytes, size_t granule, size_t small_limit) {
  if (bytes <= granule) return granule;
  if (bytes <= small_limit) return (bytes + granule - 1) / granule * granule;
  const size_t p = size_t{1} << (63 - __builtin_clzll(bytes - 1));  // largest power of two < bytes
  const size_t step = p / 4;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = bucket_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= size;
  } else {
    p = raw_allocate(size);
    if (!p) {
      release_cached_locked();
      p = raw_allocate(size);
    }
    if (!p) out_of_memory(bytes, stats_);
    ++stats_.os_allocations;
  }
  stats_.allocated_bytes += size;
  if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
  return p;
}

void CachingAllocator::deallocate(void* p, size_t bytes) {
  if (!p) return;
  const size_t size = bucket_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.allocated_bytes -= size;
  stats_.cached_bytes += size;
  free_[size].push_back(p);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) raw_free(p);
  free_.clear();
  stats_.cached_bytes = 0;
}

}  // namespace lowbit
