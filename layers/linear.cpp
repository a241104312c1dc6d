// Linear layer.
#include "linear.h"

#include "../core/ops/linalg.h"
#include "init.h"

namespace lowbit {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen)
    : Module("Linear"), in_(in_features), out_(out_features) {
  LOWBIT_CHECK(in_features >= 0 && out_features >= 0, "Linear", "negative size (", in_features, ", ",
               out_features, ")");
  Tensor w = Tensor::empty({out_features, in_features});
  Tensor b = bias ? Tensor::empty({out_features}) : Tensor();
  init::reset_linear_like(w, b, gen);
  register_parameter("weight", w);
  if (bias) register_parameter("bias", b);
}

// quant/ attaches children "wq" (weight quantizer) and "aq" (input quantizer) to make a
// quantized layer in place (typed members of models keep pointing at it); absent, plain float.
Tensor Linear::forward(const Tensor& x) {
  ModulePtr wq = child("wq"), aq = child("aq");
  return linear(aq ? aq->forward(x) : x, wq ? wq->forward(weight()) : weight(), bias());
}

}  // namespace lowbit
