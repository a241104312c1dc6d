// SubsetDataset: a contiguous range [first, first + n) of another dataset, as its own dataset.
#pragma once

#include <memory>

#include "dataset.h"

namespace lowbit {

// Used to split one source into train and test parts (the synthetic data of the config) or
// to hold out a validation range. Shares the parent; batches go through the parent's get_batch.
class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<const Dataset> parent, int64_t first, int64_t n);
  int64_t size() const override { return n_; }
  Example get(int64_t i) const override;
  Shape sample_shape() const override { return parent_->sample_shape(); }
  int64_t num_classes() const override { return parent_->num_classes(); }
  void get_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels) const override;

 private:
  std::shared_ptr<const Dataset> parent_;
  int64_t first_, n_;
};

}  // namespace lowbit
