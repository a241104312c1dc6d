// SyntheticDataset: class patterns, labels and per-sample noise from keyed Philox streams.
#include "synthetic.h"

namespace lowbit {

SyntheticDataset::SyntheticDataset(int64_t n, Shape sample_shape, int64_t num_classes, uint64_t seed, float noise)
    : n_(n), classes_(num_classes), shape_(std::move(sample_shape)), noise_(noise) {
  LOWBIT_CHECK(n >= 0, "SyntheticDataset", "size ", n, " is negative");
  LOWBIT_CHECK(num_classes >= 1, "SyntheticDataset", "num_classes ", num_classes, " must be at least 1");
  LOWBIT_CHECK(shape_.size() == 3 && numel(shape_) > 0, "SyntheticDataset", "sample shape ", shape_str(shape_),
               " must be a non-empty [C, H, W]");
  const Generator root = Generator(seed).split("synthetic");
  label_gen_ = root.split("label");
  noise_gen_ = root.split("noise");
  const Generator mean_gen = root.split("mean");
  const int64_t per = numel(shape_);
  means_.resize(static_cast<size_t>(classes_ * per));
  for (size_t j = 0; j < means_.size(); ++j) means_[j] = 2.0f * uint_to_unit(mean_gen.block(j)[0]) - 1.0f;
}

int64_t SyntheticDataset::label(int64_t i) const {
  check_index(i, "SyntheticDataset::label");
  const PhiloxBlock b = label_gen_.block(static_cast<uint64_t>(i));
  const uint64_t x = (uint64_t{b[0]} << 32) | b[1];
  return static_cast<int64_t>(x % static_cast<uint64_t>(classes_));  // bias < 2^-40 for any sane class count
}

void SyntheticDataset::fill(int64_t i, float* dst) const {
  const int64_t per = numel(shape_);
  const float* mean = means_.data() + label(i) * per;
  // Sample i owns its own stream (key split by i), so samples never share counters.
  const Generator g = noise_gen_.split(static_cast<uint64_t>(i));
  for (int64_t j = 0; j < per; ++j) dst[j] = mean[j] + noise_ * normal_from_block(g.block(static_cast<uint64_t>(j)));
}

Example SyntheticDataset::get(int64_t i) const {
  check_index(i, "SyntheticDataset::get");
  Example ex;
  ex.image = Tensor::empty(shape_, DType::f32);
  fill(i, ex.image.data<float>());
  ex.label = label(i);
  return ex;
}

void SyntheticDataset::get_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels) const {
  alloc_batch(indices, images, labels, "SyntheticDataset::get_batch");
  const int64_t per = numel(shape_);
  for (size_t b = 0; b < indices.size(); ++b) {
    fill(indices[b], images.data<float>() + static_cast<int64_t>(b) * per);
    labels.data<int64_t>()[b] = label(indices[b]);
  }
}

}  // namespace lowbit
