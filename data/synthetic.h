// SyntheticDataset: deterministic, learnable random images for tests and benchmarks.
#pragma once

#include <cstdint>
#include <vector>

#include "../core/rng.h"
#include "dataset.h"

namespace lowbit {

// Sample i is a function of (seed, i) alone: label i is drawn from the counter stream, and the
// image is the label's fixed random pattern (uniform in [-1, 1]) plus Gaussian noise of std
// `noise`, so a classifier can learn it and get() needs no mutable state.
class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(int64_t n, Shape sample_shape, int64_t num_classes, uint64_t seed, float noise = 0.5f);
  int64_t size() const override { return n_; }
  Example get(int64_t i) const override;
  Shape sample_shape() const override { return shape_; }
  int64_t num_classes() const override { return classes_; }
  void get_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels) const override;

  int64_t label(int64_t i) const;

 private:
  void fill(int64_t i, float* dst) const;
  int64_t n_, classes_;
  Shape shape_;
  float noise_;
  Generator label_gen_, noise_gen_;
  std::vector<float> means_;  // classes_ * numel(shape_)
};

}  // namespace lowbit
