// Pooling layers over NCHW: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (no parameters).
#pragma once

#include "../core/ops/pool.h"
#include "module.h"

namespace lowbit {

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Pool2dOptions options) : Module("MaxPool2d"), options_(options) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, options_); }
  const Pool2dOptions& options() const { return options_; }

 private:
  Pool2dOptions options_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Pool2dOptions options) : Module("AvgPool2d"), options_(options) {}
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, options_); }
  const Pool2dOptions& options() const { return options_; }

 private:
  Pool2dOptions options_;
};

// Output (out_h, out_w); AdaptiveAvgPool2d(1, 1) is global average pooling.
class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w) : Module("AdaptiveAvgPool2d"), out_h_(out_h), out_w_(out_w) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, out_h_, out_w_); }

 private:
  int64_t out_h_, out_w_;
};

}  // namespace lowbit
