// Pinned host buffers and the staging ring the data loader uploads batches through.
#include "pinned.h"

#include <cstring>

#include "common.cuh"
#include "runtime.h"

namespace lowbit::cuda {

PinnedBuffer::~PinnedBuffer() {
  if (data_) (void)cudaFreeHost(data_);  // destructors do not throw; a failure leaks the block
}

void PinnedBuffer::reserve(size_t bytes) {
  if (bytes <= size_) return;
  if (data_) LOWBIT_CUDA_CHECK(cudaFreeHost(data_));
  data_ = nullptr;
  size_ = 0;
  // Grown by half again, so a slightly larger batch does not reallocate every time.
  const size_t want = bytes + bytes / 2;
  LOWBIT_CUDA_CHECK(cudaHostAlloc(&data_, want, cudaHostAllocPortable));
  size_ = want;
}

namespace {

// Each staged tensor starts on a 256-byte boundary of the block (cudaMemcpy's fast path).
size_t align_up(size_t n) { return (n + 255) & ~size_t{255}; }

struct Staged {
  Shape shape;
  DType dtype;
  size_t offset, bytes;
};

}  // namespace

struct PinnedStager::Impl {
  struct Slot {
    PinnedBuffer buffer;
    cudaEvent_t done = nullptr;  // recorded after the slot's upload is queued
    std::vector<Staged> tensors;
  };
  int device;
  std::vector<Slot> slots;

  Slot& slot(int k) {
    LOWBIT_CHECK(k >= 0 && k < static_cast<int>(slots.size()), "PinnedStager", "slot ", k, " is outside [0, ",
                 slots.size(), ")");
    return slots[static_cast<size_t>(k)];
  }
};

PinnedStager::PinnedStager(int device, int slots) : impl_(std::make_unique<Impl>()) {
  LOWBIT_CHECK(slots >= 1, "PinnedStager", "needs at least one slot, got ", slots);
  (void)stream(device);  // checks the device index and creates its stream
  impl_->device = device;
  impl_->slots.resize(static_cast<size_t>(slots));
  DeviceGuard g(device);
  for (auto& s : impl_->slots) LOWBIT_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
}

PinnedStager::~PinnedStager() {
  // Copies still queued read the pinned blocks: wait for them before the blocks are freed.
  for (auto& s : impl_->slots) {
    if (!s.done) continue;
    (void)cudaEventSynchronize(s.done);
    (void)cudaEventDestroy(s.done);
  }
}

int PinnedStager::slots() const { return static_cast<int>(impl_->slots.size()); }

void PinnedStager::stage(int k, const std::vector<Tensor>& host) {
  Impl::Slot& s = impl_->slot(k);
  // The worker thread's current device would otherwise be 0, creating a context there.
  DeviceGuard g(impl_->device);
  // An event never recorded counts as complete, so the first use does not wait.
  LOWBIT_CUDA_CHECK(cudaEventSynchronize(s.done));
  size_t total = 0;
  for (const Tensor& t : host) {
    LOWBIT_CHECK(t.device().is_cpu(), "PinnedStager::stage", "expects CPU tensors, got one on ", t.device().str());
    total += align_up(t.nbytes());
  }
  s.buffer.reserve(total);
  s.tensors.clear();
  size_t offset = 0;
  for (const Tensor& t : host) {
    if (t.nbytes() > 0) std::memcpy(static_cast<char*>(s.buffer.data()) + offset, t.raw_data(), t.nbytes());
    s.tensors.push_back({t.shape(), t.dtype(), offset, t.nbytes()});
    offset += align_up(t.nbytes());
  }
}

std::vector<Tensor> PinnedStager::upload(int k) {
  Impl::Slot& s = impl_->slot(k);
  const int dev = impl_->device;
  DeviceGuard g(dev);
  cudaStream_t st = stream(dev);
  std::vector<Tensor> out;
  out.reserve(s.tensors.size());
  for (const Staged& t : s.tensors) {
    // Allocated before the copy is queued: a block the allocator hands back was freed after
    // the kernels that read it were queued, so this copy runs behind them on the same stream.
    Tensor d = Tensor::empty(t.shape, t.dtype, Device::cuda(dev));
    if (t.bytes > 0)
      LOWBIT_CUDA_CHECK(cudaMemcpyAsync(d.raw_data(), static_cast<const char*>(s.buffer.data()) + t.offset, t.bytes,
                                        cudaMemcpyHostToDevice, st));
    out.push_back(std::move(d));
  }
  LOWBIT_CUDA_CHECK(cudaEventRecord(s.done, st));
  return out;
}

std::shared_ptr<PinnedStager> make_pinned_stager(int device, int slots) {
  return std::make_shared<PinnedStager>(device, slots);
}

}  // namespace lowbit::cuda
