// QConv2d: a Conv2d built with its quantizers.
#include "qconv2d.h"

#include "../core/autograd.h"

namespace lowbit {

QConv2d::QConv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, Conv2dOptions options,
                 bool bias, QuantizerPtr wq, QuantizerPtr aq, Generator& gen)
    : Conv2d(in_channels, out_channels, kernel, options, bias, gen) {
  attach_quantizers(*this, std::move(wq), std::move(aq));
}

QConv2d::QConv2d(const Conv2d& source, QuantizerPtr wq, QuantizerPtr aq)
    : Conv2d(source.in_channels(), source.out_channels(), source.kernel_size(), source.options(),
             source.bias().defined(), scratch_generator()) {
  {
    NoGradGuard guard;
    Tensor w = weight();
    w.copy_(source.weight());
    if (source.bias().defined()) {
      Tensor b = bias();
      b.copy_(source.bias());
    }
  }
  train(source.is_training());
  attach_quantizers(*this, std::move(wq), std::move(aq));
}

}  // namespace lowbit
