// DataLoader: epoch orders, batch assembly, and the single prefetch worker.
#include "loader.h"

#include <numeric>

#ifdef LOWBIT_WITH_CUDA
#include "../core/cuda/pinned.h"
#endif

namespace lowbit {

DataLoader::DataLoader(const Dataset& dataset, LoaderOptions options, Compose transforms)
    : ds_(dataset),
      opt_(options),
      transforms_(std::move(transforms)),
      augment_gen_(Generator(options.seed).split("augment")) {
  LOWBIT_CHECK(opt_.batch_size > 0, "DataLoader", "batch_size ", opt_.batch_size, " must be positive");
  if (opt_.device.is_cuda()) {
#ifdef LOWBIT_WITH_CUDA
    // Slots for the queued batches, the one being built and the one whose copy may still run.
    stager_ = cuda::make_pinned_stager(opt_.device.index, static_cast<int>(kDepth) + 2);
#else
    throw Error("batches on " + opt_.device.str() + " need a build with CUDA", "DataLoader",
                "lowbit was built without CUDA; use the CPU");
#endif
  }
  if (opt_.prefetch) worker_ = std::thread([this] { worker_loop(); });
}

DataLoader::~DataLoader() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

int64_t DataLoader::num_batches() const {
  const int64_t n = ds_.size(), b = opt_.batch_size;
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  LOWBIT_CHECK(epoch >= 0, "DataLoader", "epoch ", epoch, " is negative");
  std::vector<int64_t> order(static_cast<size_t>(ds_.size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!opt_.shuffle) return order;
  Generator g = Generator(opt_.seed).split("order").split(static_cast<uint64_t>(epoch));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[g.below(i)]);
  return order;
}

void DataLoader::begin_epoch(int64_t epoch) {
  std::vector<int64_t> order = epoch_order(epoch);
  {
    std::lock_guard<std::mutex> lk(mu_);
    epoch_ = epoch;
    order_ = std::move(order);
    active_ = true;
  }
  started_ = true;
  restart(0);
}

void DataLoader::skip_to(int64_t batch_index) {
  if (!started_) begin_epoch(0);
  LOWBIT_CHECK(batch_index >= 0 && batch_index <= num_batches(), "DataLoader::skip_to", "batch ", batch_index,
               " is outside [0, ", num_batches(), "]");
  restart(batch_index);
}

void DataLoader::restart(int64_t position) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    pos_ = produce_ = position;
    ++generation_;
    queue_.clear();
  }
  cv_.notify_all();
}

std::vector<int64_t> DataLoader::slice(int64_t index) const {
  const int64_t begin = index * opt_.batch_size;
  const int64_t end = std::min<int64_t>(begin + opt_.batch_size, static_cast<int64_t>(order_.size()));
  return std::vector<int64_t>(order_.begin() + begin, order_.begin() + end);
}

Batch DataLoader::build(int64_t epoch, int64_t index, std::vector<int64_t> indices) const {
  Batch b;
  ds_.get_batch(indices, b.images, b.labels);
  if (!transforms_.empty()) b.images = transforms_(b.images, indices, epoch, augment_gen_);
  b.indices = std::move(indices);
  b.epoch = epoch;
  b.index = index;
  return b;
}

DataLoader::Item DataLoader::produce(int64_t epoch, int64_t index, std::vector<int64_t> indices) {
  Item item;
  item.batch = build(epoch, index, std::move(indices));
#ifdef LOWBIT_WITH_CUDA
  if (stager_) {
    item.slot = static_cast<int>(staged_++ % stager_->slots());
    stager_->stage(item.slot, {item.batch.images, item.batch.labels});
    item.batch.images = item.batch.labels = Tensor();  // the host copies are not needed any more
  }
#endif
  return item;
}

void DataLoader::deliver(Item& item, Batch& out) {
#ifdef LOWBIT_WITH_CUDA
  if (item.slot >= 0) {
    std::vector<Tensor> d = stager_->upload(item.slot);
    item.batch.images = d[0];
    item.batch.labels = d[1];
  }
#endif
  out = std::move(item.batch);
}

bool DataLoader::next(Batch& out) {
  if (!started_) begin_epoch(0);
  if (pos_ >= num_batches()) return false;
  if (!opt_.prefetch) {
    const int64_t index = pos_++;  // a failed batch is passed over, as with prefetch
    if (!stager_) {
      out = build(epoch_, index, slice(index));
      return true;
    }
    Item item = produce(epoch_, index, slice(index));
    deliver(item, out);
    return true;
  }
  Item item;
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !queue_.empty(); });
    item = std::move(queue_.front());
    queue_.pop_front();
    ++pos_;
  }
  cv_.notify_all();
  if (item.error) std::rethrow_exception(item.error);
  deliver(item, out);
  return true;
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || (active_ && produce_ < num_batches() && queue_.size() < kDepth); });
    if (stop_) return;
    const uint64_t generation = generation_;
    const int64_t epoch = epoch_, index = produce_++;
    std::vector<int64_t> indices = slice(index);
    lk.unlock();
    Item item;
    try {
      item = produce(epoch, index, std::move(indices));
    } catch (...) {
      item.error = std::current_exception();
    }
    lk.lock();
    // A restart while we were building makes this batch stale.
    if (generation == generation_) {
      queue_.push_back(std::move(item));
      cv_.notify_all();
    }
  }
}

}  // namespace lowbit
