// QConv2d: a Conv2d with a weight quantizer "wq" and an input quantizer "aq" as children.
#pragma once

#include "../layers/conv2d.h"
#include "qlinear.h"

namespace lowbit {

// y = conv2d(aq(x), wq(weight), bias), as QLinear: Conv2d::forward applies the children.
class QConv2d : public Conv2d {
 public:
  QConv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, Conv2dOptions options, bool bias,
          QuantizerPtr wq, QuantizerPtr aq, Generator& gen = default_generator());
  // Copies the float layer's weight and bias.
  QConv2d(const Conv2d& source, QuantizerPtr wq, QuantizerPtr aq);

  QuantizerPtr wq() const { return weight_quantizer(*this); }
  QuantizerPtr aq() const { return activation_quantizer(*this); }
};

}  // namespace lowbit
