// SubsetDataset: index translation onto the parent dataset.
#include "subset.h"

namespace lowbit {

SubsetDataset::SubsetDataset(std::shared_ptr<const Dataset> parent, int64_t first, int64_t n)
    : parent_(std::move(parent)), first_(first), n_(n) {
  LOWBIT_CHECK(parent_ != nullptr, "SubsetDataset", "parent dataset is null");
  LOWBIT_CHECK(first >= 0 && n >= 0 && first + n <= parent_->size(), "SubsetDataset", "range [", first, ", ",
               first + n, ") is outside a dataset of ", parent_->size(), " samples");
}

Example SubsetDataset::get(int64_t i) const {
  check_index(i, "SubsetDataset::get");
  return parent_->get(first_ + i);
}

void SubsetDataset::get_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels) const {
  std::vector<int64_t> shifted(indices.size());
  for (size_t b = 0; b < indices.size(); ++b) {
    check_index(indices[b], "SubsetDataset::get_batch");
    shifted[b] = first_ + indices[b];
  }
  parent_->get_batch(shifted, images, labels);
}

}  // namespace lowbit
