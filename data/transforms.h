// Batch transforms (normalize, random crop with zero padding, random horizontal flip) and Compose.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../core/rng.h"
#include "../core/tensor.h"

namespace lowbit {

// A transform maps a batch f32 [B, C, H, W] to a fresh batch. Random choices for sample b are
// drawn from gen.split(epoch).split(indices[b]) alone, so they depend on (seed, epoch, dataset
// index) and never on batch composition, thread count or prefetching.
class Transform {
 public:
  virtual ~Transform() = default;
  virtual Tensor apply(const Tensor& images, const std::vector<int64_t>& indices, int64_t epoch,
                       const Generator& gen) const = 0;
};

// x[c] = (x[c] - mean[c]) / std[c]; deterministic.
class Normalize : public Transform {
 public:
  Normalize(std::vector<float> mean, std::vector<float> std);
  Tensor apply(const Tensor& images, const std::vector<int64_t>& indices, int64_t epoch,
               const Generator& gen) const override;

 private:
  std::vector<float> mean_, inv_std_;
};

// Pads each side with `padding` zeros, then takes a height x width window at a uniformly random
// offset (torchvision's RandomCrop(size, padding)).
class RandomCrop : public Transform {
 public:
  RandomCrop(int64_t height, int64_t width, int64_t padding);
  Tensor apply(const Tensor& images, const std::vector<int64_t>& indices, int64_t epoch,
               const Generator& gen) const override;

 private:
  int64_t height_, width_, padding_;
};

// Mirrors each sample left-right with probability p.
class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(float p = 0.5f);
  Tensor apply(const Tensor& images, const std::vector<int64_t>& indices, int64_t epoch,
               const Generator& gen) const override;

 private:
  float p_;
};

// Applies its transforms in order; transform k draws from gen.split(k).
class Compose {
 public:
  Compose() = default;
  explicit Compose(std::vector<std::shared_ptr<const Transform>> ts) : ts_(std::move(ts)) {}
  Compose& add(std::shared_ptr<const Transform> t) {
    ts_.push_back(std::move(t));
    return *this;
  }
  bool empty() const { return ts_.empty(); }
  Tensor operator()(const Tensor& images, const std::vector<int64_t>& indices, int64_t epoch,
                    const Generator& gen) const;

 private:
  std::vector<std::shared_ptr<const Transform>> ts_;
};

}  // namespace lowbit
