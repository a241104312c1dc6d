// Linear: y = x W^T + b with torch.nn.Linear's names (weight [out, in], bias [out]) and init.
#pragma once

#include "../core/rng.h"
#include "module.h"

namespace lowbit {

class Linear : public Module {
 public:
  // Initialised as PyTorch's reset_parameters, drawing from gen.
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;

  Tensor weight() const { return parameter("weight"); }
  Tensor bias() const { return parameter("bias"); }  // undefined without bias
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
};

}  // namespace lowbit
