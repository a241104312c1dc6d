// DataLoader: seeded per-epoch shuffling, batching, transforms and one-batch-ahead prefetch.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "../core/device.h"
#include "../core/rng.h"
#include "dataset.h"
#include "transforms.h"

namespace lowbit {

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  bool prefetch = true;  // build the next batches on a background thread
  // Where next() delivers images and labels. A CUDA device: each batch is built on the host as
  // for the CPU, copied into a pinned (page-locked) staging slot by the worker, and next()
  // queues its copy to the device on the device's stream without waiting for it.
  Device device = Device::cpu();
};

namespace cuda {
class PinnedStager;
}

struct Batch {
  Tensor images;                 // f32 [B, C, H, W], after the transforms, on options.device
  Tensor labels;                 // i64 [B], on options.device
  std::vector<int64_t> indices;  // dataset indices of the B samples
  int64_t epoch = 0;
  int64_t index = 0;             // batch number within the epoch
};

// Batches are a pure function of (seed, epoch, batch index): the order of epoch e is a
// Fisher-Yates shuffle drawn from Generator(seed).split("order").split(e), and transforms draw
// from Generator(seed).split("augment"), so prefetch on or off and resuming with skip_to()
// give identical batches.
//
//   DataLoader loader(ds, {.batch_size = 128, .seed = 1}, transforms);
//   for (int64_t e = start; e < epochs; ++e) {
//     loader.begin_epoch(e);
//     for (Batch b; loader.next(b);) ...
//   }
//
// The dataset must outlive the loader. One loader is driven from one thread.
class DataLoader {
 public:
  DataLoader(const Dataset& dataset, LoaderOptions options, Compose transforms = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t num_batches() const;
  const LoaderOptions& options() const { return opt_; }

  // Starts epoch e at batch 0 (set_epoch is the same thing, named as in PyTorch's samplers).
  void begin_epoch(int64_t epoch);
  void set_epoch(int64_t epoch) { begin_epoch(epoch); }
  // Continues the current epoch from batch `batch_index` (0 <= batch_index <= num_batches()).
  void skip_to(int64_t batch_index);
  int64_t epoch() const { return epoch_; }
  int64_t position() const { return pos_; }  // index of the batch next() returns next

  // The next batch of the epoch; false at its end. Starts epoch 0 if none was begun. An
  // exception thrown while building the batch (also on the worker) is rethrown here.
  bool next(Batch& out);

  // The dataset indices of epoch e, in the order batches take them.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  struct Item {
    Batch batch;
    std::exception_ptr error;
    int slot = -1;  // the pinned staging slot holding the batch (CUDA devices)
  };
  Batch build(int64_t epoch, int64_t index, std::vector<int64_t> indices) const;
  // build, then (CUDA devices) the copy of images and labels into the next staging slot.
  Item produce(int64_t epoch, int64_t index, std::vector<int64_t> indices);
  // Hands the item's batch to the caller, queuing its upload first when it was staged.
  void deliver(Item& item, Batch& out);
  std::vector<int64_t> slice(int64_t index) const;  // the indices of batch `index` of order_
  void restart(int64_t position);                   // drop prefetched work, continue at position
  void worker_loop();

  const Dataset& ds_;
  LoaderOptions opt_;
  Compose transforms_;
  Generator augment_gen_;
  bool started_ = false;
  int64_t epoch_ = 0, pos_ = 0;
  std::vector<int64_t> order_;
  // CUDA devices only: pinned staging slots, used in turn by whichever thread builds batches.
  std::shared_ptr<cuda::PinnedStager> stager_;
  int64_t staged_ = 0;

  // Prefetch state, guarded by mu_. Each restart bumps generation_ so stale batches are dropped.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  uint64_t generation_ = 0;
  int64_t produce_ = 0;
  bool active_ = false, stop_ = false;
  std::thread worker_;
  static constexpr size_t kDepth = 2;
};

}  // namespace lowbit
