// QLinear: a Linear with a weight quantizer "wq" and an input quantizer "aq" as children.
#pragma once

#include "../layers/linear.h"
#include "quantizer.h"

namespace lowbit {

// y = linear(aq(x), wq(weight), bias): Linear::forward applies the children when present,
// so quantize_model() turns a model's own Linear objects into quantized layers in place
// (attach_quantizers) and this class is the same thing built directly. The parameter names
// are Linear's, so a float checkpoint loads (the quantizer entries are reported missing and
// initialize_missing derives them). Either quantizer may be null (32 bits: left in float).
class QLinear : public Linear {
 public:
  QLinear(int64_t in_features, int64_t out_features, bool bias, QuantizerPtr wq, QuantizerPtr aq,
          Generator& gen = default_generator());
  // Copies the float layer's weight and bias.
  QLinear(const Linear& source, QuantizerPtr wq, QuantizerPtr aq);

  QuantizerPtr wq() const;
  QuantizerPtr aq() const;
};

// Makes `layer` (a Linear or Conv2d, or anything with a "weight" parameter whose forward
// applies children "wq" and "aq") quantized: registers the quantizers as children, binds wq
// to the weight and initialises it from the current values. Throws if the layer already has them.
void attach_quantizers(Module& layer, QuantizerPtr wq, QuantizerPtr aq);

// For the copying constructors: a private stream whose draws are overwritten.
Generator& scratch_generator();

// The quantizers of a layer (null where absent).
QuantizerPtr weight_quantizer(const Module& layer);
QuantizerPtr activation_quantizer(const Module& layer);

}  // namespace lowbit
