// Dataset's default batch path and index checks.
#include "dataset.h"

#include <cstring>

namespace lowbit {

void Dataset::check_index(int64_t i, const char* where) const {
  LOWBIT_CHECK(i >= 0 && i < size(), where, "index ", i, " out of range for a dataset of ", size(), " samples");
}

void Dataset::alloc_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels,
                          const char* where) const {
  for (int64_t i : indices) check_index(i, where);
  Shape s = sample_shape();
  s.insert(s.begin(), static_cast<int64_t>(indices.size()));
  images = Tensor::empty(s, DType::f32);
  labels = Tensor::empty({static_cast<int64_t>(indices.size())}, DType::i64);
}

void Dataset::get_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels) const {
  alloc_batch(indices, images, labels, "Dataset::get_batch");
  const int64_t per = numel(sample_shape());
  float* dst = images.data<float>();
  int64_t* lab = labels.data<int64_t>();
  for (size_t b = 0; b < indices.size(); ++b) {
    Example ex = get(indices[b]);
    LOWBIT_CHECK(ex.image.dtype() == DType::f32 && ex.image.numel() == per, "Dataset::get_batch",
                 "sample ", indices[b], " has shape ", shape_str(ex.image.shape()), " but sample_shape() is ",
                 shape_str(sample_shape()));
    std::memcpy(dst + static_cast<int64_t>(b) * per, ex.image.data<float>(), sizeof(float) * per);
    lab[b] = ex.label;
  }
}

}  // namespace lowbit
