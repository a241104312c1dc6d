// Page-locked host staging for batches: copy a host batch into pinned memory (cudaHostAlloc),
// then queue its upload on the device's stream so the host does not wait for it. Plain C++.
#pragma once

#include <memory>
#include <vector>

#include "../tensor.h"

namespace lowbit::cuda {

// A page-locked host block, grown on demand (cudaHostAlloc, portable to every device).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  PinnedBuffer& operator=(PinnedBuffer&&) = delete;

  // At least `bytes` bytes; the contents are lost when the block grows. The caller makes sure
  // no queued copy still reads the old block (PinnedStager waits on its event first).
  void reserve(size_t bytes);
  void* data() { return data_; }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// A ring of `slots` staging slots for one CUDA device, each a PinnedBuffer and an event that
// marks the end of the slot's last upload. The producer (the data loader's worker) calls
// stage(k, ...) and the consumer later calls upload(k); distinct slots may be used from two
// threads at once, one slot from one thread at a time (the loader's queue orders them).
class PinnedStager {
 public:
  PinnedStager(int device, int slots);
  ~PinnedStager();
  PinnedStager(const PinnedStager&) = delete;
  PinnedStager& operator=(const PinnedStager&) = delete;

  int slots() const;
  // Copies the CPU tensors `host` into slot k's pinned block, after waiting for the slot's
  // previous upload to finish (with more slots than batches in flight, it has).
  void stage(int k, const std::vector<Tensor>& host);
  // Queues the copy of what slot k holds to the device on its stream and records the slot's
  // event; returns the device tensors, usable by any work queued on that stream afterwards.
  std::vector<Tensor> upload(int k);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A stager for CUDA device `device`; held through shared_ptr so code compiled without CUDA
// can keep the (incomplete) type.
std::shared_ptr<PinnedStager> make_pinned_stager(int device, int slots);

}  // namespace lowbit::cuda
