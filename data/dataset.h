// Dataset: the interface every data source implements (indexed images + integer labels).
#pragma once

#include <cstdint>
#include <vector>

#include "../core/tensor.h"

namespace lowbit {

struct Example {
  Tensor image;       // f32 [C, H, W]
  int64_t label = 0;  // in [0, num_classes)
};

// Implementations must be safe to call concurrently from const methods: the
// DataLoader's prefetch worker reads while the trainer holds the previous batch.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t i) const = 0;
  virtual Shape sample_shape() const = 0;  // [C, H, W]
  virtual int64_t num_classes() const = 0;
  // Fresh images f32 [B, C, H, W] and labels i64 [B] for `indices`. The default goes through
  // get(); sources that hold raw bytes override it to convert straight into the batch.
  virtual void get_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels) const;

 protected:
  // Throws naming `where` when i is outside [0, size()).
  void check_index(int64_t i, const char* where) const;
  // Allocates the batch tensors for `indices` and checks every index.
  void alloc_batch(const std::vector<int64_t>& indices, Tensor& images, Tensor& labels, const char* where) const;
};

}  // namespace lowbit
