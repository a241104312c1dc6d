// Byte-image datasets: conversion of stored bytes into f32 samples and batches.
#include "u8_images.h"

namespace lowbit {

namespace {
void to_unit(const uint8_t* src, float* dst, int64_t n) {
  constexpr float kScale = 1.0f / 255.0f;
  for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<float>(src[j]) * kScale;
}
}  // namespace

Example U8ImageDataset::get(int64_t i) const {
  check_index(i, "U8ImageDataset::get");
  Example ex;
  ex.image = Tensor::empty(shape_, DType::f32);
  to_unit(raw(i), ex.image.data<float>(), numel(shape_));
  ex.label = label(i);
  return ex;
}

void U8ImageDataset::get_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels) const {
  alloc_batch(indices, images, labels, "U8ImageDataset::get_batch");
  const int64_t per = numel(shape_);
  float* dst = images.data<float>();
  int64_t* lab = labels.data<int64_t>();
  for (size_t b = 0; b < indices.size(); ++b) {
    to_unit(raw(indices[b]), dst + static_cast<int64_t>(b) * per, per);
    lab[b] = label(indices[b]);
  }
}

}  // namespace lowbit
