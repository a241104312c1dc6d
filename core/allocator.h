// Size-bucketed caching allocator for host memory: freed blocks are kept and reused,
// so a training step allocates nothing from the OS after the first one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "device.h"

namespace lowbit {

struct AllocatorStats {
  size_t allocated_bytes = 0;       // handed out now
  size_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes
  size_t cached_bytes = 0;          // freed blocks kept for reuse
  uint64_t os_allocations = 0;      // calls that reached the system allocator
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns a 64-byte aligned block of at least `bytes` bytes (never null).
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  // Returns every cached block to the system.
  virtual void empty_cache() = 0;
};

// The allocator serving a device; CUDA devices get theirs from the CUDA backend.
Allocator& allocator_for(Device d);
// Backends register their allocator for a device kind at start-up.
void register_allocator(DeviceKind kind, Allocator* a);

}  // namespace lowbit
