// Batch transforms; per-sample randomness keyed by (epoch, dataset index).
#include "transforms.h"

#include <algorithm>
#include <cstring>

namespace lowbit {

namespace {

void check_batch(const Tensor& images, const std::vector<int64_t>& indices, const char* op) {
  LOWBIT_CHECK(images.dtype() == DType::f32 && images.dim() == 4, op, "expects f32 [B, C, H, W] images, got ",
               dtype_name(images.dtype()), " ", shape_str(images.shape()));
  LOWBIT_CHECK(images.size(0) == static_cast<int64_t>(indices.size()), op, "batch ", shape_str(images.shape()),
               " has ", images.size(0), " samples but ", indices.size(), " indices");
}

// The first random block of sample `index`'s stream for this epoch.
PhiloxBlock sample_block(const Generator& gen, int64_t epoch, int64_t index) {
  return gen.split(static_cast<uint64_t>(epoch)).split(static_cast<uint64_t>(index)).block(0);
}

}  // namespace

Normalize::Normalize(std::vector<float> mean, std::vector<float> std) : mean_(std::move(mean)) {
  LOWBIT_CHECK(mean_.size() == std.size() && !mean_.empty(), "Normalize", "mean has ", mean_.size(),
               " channels but std has ", std.size());
  for (float s : std) {
    LOWBIT_CHECK(s > 0, "Normalize", "std ", s, " must be positive");
    inv_std_.push_back(1.0f / s);
  }
}

Tensor Normalize::apply(const Tensor& images, const std::vector<int64_t>& indices, int64_t, const Generator&) const {
  check_batch(images, indices, "Normalize");
  const int64_t B = images.size(0), C = images.size(1), plane = images.size(2) * images.size(3);
  LOWBIT_CHECK(C == static_cast<int64_t>(mean_.size()), "Normalize", "batch ", shape_str(images.shape()), " has ", C,
               " channels but mean/std have ", mean_.size());
  Tensor out = Tensor::empty(images.shape(), DType::f32);
  const float* x = images.data<float>();
  float* y = out.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t o = (b * C + c) * plane;
      for (int64_t j = 0; j < plane; ++j) y[o + j] = (x[o + j] - mean_[c]) * inv_std_[c];
    }
  return out;
}

RandomCrop::RandomCrop(int64_t height, int64_t width, int64_t padding)
    : height_(height), width_(width), padding_(padding) {
  LOWBIT_CHECK(height > 0 && width > 0 && padding >= 0, "RandomCrop", "size ", height, "x", width, " and padding ",
               padding, " must be positive and non-negative");
}

Tensor RandomCrop::apply(const Tensor& images, const std::vector<int64_t>& indices, int64_t epoch,
                         const Generator& gen) const {
  check_batch(images, indices, "RandomCrop");
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  const int64_t span_h = H + 2 * padding_ - height_ + 1, span_w = W + 2 * padding_ - width_ + 1;
  LOWBIT_CHECK(span_h > 0 && span_w > 0, "RandomCrop", "crop ", height_, "x", width_, " does not fit batch ",
               shape_str(images.shape()), " with padding ", padding_);
  Tensor out = Tensor::zeros({B, C, height_, width_}, DType::f32);
  const float* x = images.data<float>();
  float* y = out.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    const PhiloxBlock r = sample_block(gen, epoch, indices[b]);
    // Offsets into the padded image; the bias of % is below 2^-20 for any real image size.
    const int64_t top = static_cast<int64_t>(r[0] % static_cast<uint64_t>(span_h)) - padding_;
    const int64_t left = static_cast<int64_t>(r[1] % static_cast<uint64_t>(span_w)) - padding_;
    const int64_t c0 = std::max<int64_t>(0, -left), c1 = std::min<int64_t>(width_, W - left);
    if (c1 <= c0) continue;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < height_; ++i) {
        const int64_t si = top + i;
        if (si < 0 || si >= H) continue;
        std::memcpy(y + ((b * C + c) * height_ + i) * width_ + c0, x + ((b * C + c) * H + si) * W + left + c0,
                    sizeof(float) * (c1 - c0));
      }
  }
  return out;
}

RandomHorizontalFlip::RandomHorizontalFlip(float p) : p_(p) {
  LOWBIT_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip", "probability ", p, " is outside [0, 1]");
}

Tensor RandomHorizontalFlip::apply(const Tensor& images, const std::vector<int64_t>& indices, int64_t epoch,
                                   const Generator& gen) const {
  check_batch(images, indices, "RandomHorizontalFlip");
  const int64_t B = images.size(0), rows = images.size(1) * images.size(2), W = images.size(3);
  Tensor out = Tensor::empty(images.shape(), DType::f32);
  out.copy_(images);
  float* y = out.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    if (!(uint_to_unit(sample_block(gen, epoch, indices[b])[0]) < p_)) continue;
    for (int64_t r = 0; r < rows; ++r) std::reverse(y + (b * rows + r) * W, y + (b * rows + r + 1) * W);
  }
  return out;
}

Tensor Compose::operator()(const Tensor& images, const std::vector<int64_t>& indices, int64_t epoch,
                           const Generator& gen) const {
  Tensor x = images;
  for (size_t k = 0; k < ts_.size(); ++k) x = ts_[k]->apply(x, indices, epoch, gen.split(static_cast<uint64_t>(k)));
  return x;
}

}  // namespace lowbit
