// Conv2d: torch.nn.Conv2d's names and layout (weight [out, in / groups, kh, kw], bias [out]) and init.
#pragma once

#include <array>

#include "../core/ops/conv.h"
#include "../core/rng.h"
#include "module.h"

namespace lowbit {

class Conv2d : public Module {
 public:
  // kernel is (kh, kw); initialised as PyTorch's reset_parameters, drawing from gen.
  Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, Conv2dOptions options = {},
         bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;

  Tensor weight() const { return parameter("weight"); }
  Tensor bias() const { return parameter("bias"); }  // undefined without bias
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  std::array<int64_t, 2> kernel_size() const { return kernel_; }
  const Conv2dOptions& options() const { return options_; }

 private:
  int64_t in_, out_;
  std::array<int64_t, 2> kernel_;
  Conv2dOptions options_;
};

}  // namespace lowbit
