// DataLoader: batch shapes, drop_last, shuffling, epochs, prefetch equivalence, resume, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <vector>

#include "data/loader.h"
#include "data/synthetic.h"

using namespace lowbit;

namespace {

std::vector<Batch> epoch_batches(DataLoader& loader, int64_t epoch) {
  std::vector<Batch> out;
  loader.begin_epoch(epoch);
  for (Batch b; loader.next(b);) out.push_back(b);
  return out;
}

void require_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].indices == b[i].indices);
    REQUIRE(a[i].index == b[i].index);
    REQUIRE(a[i].images.to_vector<float>() == b[i].images.to_vector<float>());
    REQUIRE(a[i].labels.to_vector<int64_t>() == b[i].labels.to_vector<int64_t>());
  }
}

Compose augment() {
  Compose c;
  c.add(std::make_shared<RandomCrop>(4, 4, 1)).add(std::make_shared<RandomHorizontalFlip>());
  return c;
}

// A dataset whose sample 7 cannot be read.
class Faulty : public SyntheticDataset {
 public:
  Faulty() : SyntheticDataset(20, {1, 2, 2}, 2, 0) {}
  Example get(int64_t i) const override {
    LOWBIT_CHECK(i != 7, "Faulty", "sample 7 is unreadable");
    return SyntheticDataset::get(i);
  }
  void get_batch(const std::vector<int64_t>& idx, Tensor& images, Tensor& labels) const override {
    Dataset::get_batch(idx, images, labels);
  }
};

}  // namespace

TEST_CASE("DataLoader batch shapes and drop_last", "[data][loader]") {
  SyntheticDataset ds(10, {1, 3, 2}, 3, 0);
  for (bool prefetch : {false, true}) {
    DataLoader keep(ds, {.batch_size = 4, .shuffle = false, .drop_last = false, .seed = 0, .prefetch = prefetch});
    REQUIRE(keep.num_batches() == 3);
    std::vector<Batch> b = epoch_batches(keep, 0);
    REQUIRE(b.size() == 3);
    REQUIRE(b[0].images.shape() == Shape{4, 1, 3, 2});
    REQUIRE(b[0].labels.shape() == Shape{4});
    REQUIRE(b[0].labels.dtype() == DType::i64);
    REQUIRE(b[2].images.shape() == Shape{2, 1, 3, 2});
    REQUIRE(b[2].indices == std::vector<int64_t>{8, 9});
    REQUIRE(b[1].images.to_vector<float>() == [&] {
      Tensor i, l;
      ds.get_batch({4, 5, 6, 7}, i, l);
      return i.to_vector<float>();
    }());
    DataLoader drop(ds, {.batch_size = 4, .shuffle = false, .drop_last = true, .seed = 0, .prefetch = prefetch});
    REQUIRE(drop.num_batches() == 2);
    REQUIRE(epoch_batches(drop, 0).size() == 2);
  }
  REQUIRE_THROWS_AS(DataLoader(ds, {.batch_size = 0}), Error);
}

TEST_CASE("DataLoader shuffles into a seeded permutation per epoch", "[data][loader]") {
  SyntheticDataset ds(37, {1, 2, 2}, 2, 0);
  DataLoader a(ds, {.batch_size = 5, .shuffle = true, .seed = 3}), b(ds, {.batch_size = 5, .shuffle = true, .seed = 3});
  DataLoader c(ds, {.batch_size = 5, .shuffle = true, .seed = 4});
  std::vector<int64_t> e0 = a.epoch_order(0), e1 = a.epoch_order(1);
  std::vector<int64_t> sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 37; ++i) REQUIRE(sorted[i] == i);
  REQUIRE(e0 != e1);
  REQUIRE(e0 == b.epoch_order(0));
  REQUIRE(e0 != c.epoch_order(0));
  std::vector<int64_t> seen;
  for (const Batch& batch : epoch_batches(a, 1)) seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
  REQUIRE(seen == e1);
  require_same(epoch_batches(a, 2), epoch_batches(b, 2));
}

TEST_CASE("DataLoader gives the same batches with and without prefetch", "[data][loader]") {
  SyntheticDataset ds(50, {1, 4, 4}, 3, 9);
  DataLoader on(ds, {.batch_size = 8, .shuffle = true, .seed = 11, .prefetch = true}, augment());
  DataLoader off(ds, {.batch_size = 8, .shuffle = true, .seed = 11, .prefetch = false}, augment());
  for (int64_t e : {0, 1, 5}) require_same(epoch_batches(on, e), epoch_batches(off, e));
  // Augmentation changes with the epoch.
  REQUIRE(epoch_batches(on, 0)[0].images.to_vector<float>() != [&] {
    DataLoader plain(ds, {.batch_size = 8, .shuffle = true, .seed = 11, .prefetch = false});
    return epoch_batches(plain, 0)[0].images.to_vector<float>();
  }());
}

TEST_CASE("DataLoader skip_to resumes an epoch exactly", "[data][loader]") {
  SyntheticDataset ds(45, {1, 4, 4}, 3, 2);
  for (bool prefetch : {false, true}) {
    DataLoader full(ds, {.batch_size = 6, .seed = 5, .prefetch = prefetch}, augment());
    std::vector<Batch> all = epoch_batches(full, 3);
    DataLoader resumed(ds, {.batch_size = 6, .seed = 5, .prefetch = prefetch}, augment());
    resumed.begin_epoch(3);
    Batch first;
    REQUIRE(resumed.next(first));  // read one so the worker has batches queued, then jump
    resumed.skip_to(4);
    REQUIRE(resumed.position() == 4);
    REQUIRE(resumed.epoch() == 3);
    std::vector<Batch> rest;
    for (Batch b; resumed.next(b);) rest.push_back(b);
    require_same(rest, std::vector<Batch>(all.begin() + 4, all.end()));
    REQUIRE(resumed.position() == resumed.num_batches());
    resumed.skip_to(resumed.num_batches());
    Batch none;
    REQUIRE_FALSE(resumed.next(none));
    REQUIRE_THROWS_AS(resumed.skip_to(resumed.num_batches() + 1), Error);
  }
}

TEST_CASE("DataLoader rethrows errors from building a batch", "[data][loader]") {
  Faulty ds;
  for (bool prefetch : {false, true}) {
    DataLoader loader(ds, {.batch_size = 4, .shuffle = false, .seed = 0, .prefetch = prefetch});
    loader.begin_epoch(0);
    Batch b;
    REQUIRE(loader.next(b));
    REQUIRE_THROWS_WITH(loader.next(b), Catch::Contains("sample 7 is unreadable"));
    REQUIRE(loader.next(b));  // the failed batch is passed over
    REQUIRE(b.index == 2);
  }
}

TEST_CASE("DataLoader destroyed mid-epoch shuts its worker down", "[data][loader]") {
  SyntheticDataset ds(100, {1, 4, 4}, 3, 0);
  for (int k = 0; k < 20; ++k) {
    DataLoader loader(ds, {.batch_size = 3, .seed = 1});
    loader.begin_epoch(k);
    Batch b;
    if (k % 2) loader.next(b);
  }
  SUCCEED();
}
