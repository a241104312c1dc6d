// CachingAllocator: size-bucketed free lists and statistics shared by the host and device allocators.
#pragma once

#include <mutex>
#include <unordered_map>
#include <vector>

#include "allocator.h"

namespace lowbit {

// A freed block goes to the free list of its bucket and serves the next request of that
// bucket, so a training step reaches the OS (malloc, cudaMalloc) only until its working set
// has been seen once. When the OS refuses, the cache is released and the request tried once
// more. A backend supplies the bucket rounding and the raw calls.
class CachingAllocator : public Allocator {
 public:
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  AllocatorStats stats() const override;
  void reset_peak() override;
  void empty_cache() override;

 protected:
  virtual size_t bucket_size(size_t bytes) const = 0;
  // A fresh block of `size` bytes, or nullptr when out of memory (other failures throw).
  virtual void* raw_allocate(size_t size) = 0;
  virtual void raw_free(void* p) = 0;
  // Throws the backend's out-of-memory Error for a request of `bytes`.
  [[noreturn]] virtual void out_of_memory(size_t bytes, const AllocatorStats& stats) = 0;

 private:
  void release_cached_locked();

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

// Four steps per power of two above `small_limit` (at most 25% waste), multiples of `granule`
// up to it (at least one granule).
size_t bucket_round(size_t bytes, size_t granule, size_t small_limit);

}  // namespace lowbit
