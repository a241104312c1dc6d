// Conv2d layer.
#include "conv2d.h"

#include "init.h"

namespace lowbit {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, Conv2dOptions options,
               bool bias, Generator& gen)
    : Module("Conv2d"), in_(in_channels), out_(out_channels), kernel_(kernel), options_(options) {
  LOWBIT_CHECK(options.groups > 0 && in_channels % options.groups == 0 && out_channels % options.groups == 0,
               "Conv2d", "channels (", in_channels, ", ", out_channels, ") must be divisible by groups ",
               options.groups);
  LOWBIT_CHECK(kernel[0] > 0 && kernel[1] > 0, "Conv2d", "kernel must be positive, got (", kernel[0], ", ",
               kernel[1], ")");
  Tensor w = Tensor::empty({out_channels, in_channels / options.groups, kernel[0], kernel[1]});
  Tensor b = bias ? Tensor::empty({out_channels}) : Tensor();
  init::reset_linear_like(w, b, gen);
  register_parameter("weight", w);
  if (bias) register_parameter("bias", b);
}

// quant/ attaches children "wq" (weight quantizer) and "aq" (input quantizer) to make a
// quantized layer in place (typed members of models keep pointing at it); absent, plain float.
Tensor Conv2d::forward(const Tensor& x) {
  ModulePtr wq = child("wq"), aq = child("aq");
  return conv2d(aq ? aq->forward(x) : x, wq ? wq->forward(weight()) : weight(), bias(), options_);
}

}  // namespace lowbit
