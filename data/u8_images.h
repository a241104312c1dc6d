// U8ImageDataset: images held as bytes in memory, scaled to [0, 1] f32 when read (IDX, CIFAR).
#pragma once

#include <cstdint>
#include <vector>

#include "dataset.h"

namespace lowbit {

class U8ImageDataset : public Dataset {
 public:
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Example get(int64_t i) const override;
  Shape sample_shape() const override { return shape_; }
  int64_t num_classes() const override { return num_classes_; }
  void get_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels) const override;

  // The raw bytes of sample i (numel(sample_shape()) of them), for tests and statistics.
  const uint8_t* raw(int64_t i) const { return pixels_.data() + i * numel(shape_); }
  int64_t label(int64_t i) const { return labels_[static_cast<size_t>(i)]; }

 protected:
  std::vector<uint8_t> pixels_;  // size() * numel(shape_) bytes, sample-major
  std::vector<uint8_t> labels_;
  Shape shape_;                  // [C, H, W]
  int64_t num_classes_ = 0;
};

}  // namespace lowbit
