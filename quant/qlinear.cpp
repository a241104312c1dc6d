// QLinear, and attaching quantizers to any Linear or Conv2d.
#include "qlinear.h"

#include "../core/autograd.h"

namespace lowbit {

void attach_quantizers(Module& layer, QuantizerPtr wq, QuantizerPtr aq) {
  LOWBIT_CHECK(!layer.child("wq") && !layer.child("aq"), "attach_quantizers", "the layer already has quantizers");
  if (wq) {
    LOWBIT_CHECK(wq->role() == QuantRole::weight, "attach_quantizers", "wq must be a weight quantizer");
    Tensor w = layer.parameter("weight");
    LOWBIT_CHECK(w.defined(), "attach_quantizers", layer.type_name(), " has no parameter 'weight'");
    layer.register_module("wq", wq);
    Module* owner = &layer;  // the layer owns wq, so it outlives the binding
    wq->bind_source([owner] { return owner->parameter("weight"); });
    wq->initialize_missing({"initialized"});  // derives alpha (sigma, ...) from the weight
  }
  if (aq) {
    LOWBIT_CHECK(aq->role() == QuantRole::activation, "attach_quantizers", "aq must be an activation quantizer");
    layer.register_module("aq", aq);
  }
  if (wq) wq->train(layer.is_training());
  if (aq) aq->train(layer.is_training());
}

Generator& scratch_generator() {
  // The values are overwritten by the copy; a private stream keeps default_generator() untouched.
  static thread_local Generator gen(0);
  return gen;
}

QuantizerPtr weight_quantizer(const Module& layer) { return std::dynamic_pointer_cast<Quantizer>(layer.child("wq")); }
QuantizerPtr activation_quantizer(const Module& layer) {
  return std::dynamic_pointer_cast<Quantizer>(layer.child("aq"));
}

QLinear::QLinear(int64_t in_features, int64_t out_features, bool bias, QuantizerPtr wq, QuantizerPtr aq, Generator& gen)
    : Linear(in_features, out_features, bias, gen) {
  attach_quantizers(*this, std::move(wq), std::move(aq));
}

QLinear::QLinear(const Linear& source, QuantizerPtr wq, QuantizerPtr aq)
    : Linear(source.in_features(), source.out_features(), source.bias().defined(), scratch_generator()) {
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

QuantizerPtr QLinear::wq() const { return weight_quantizer(*this); }
QuantizerPtr QLinear::aq() const { return activation_quantizer(*this); }

}  // namespace lowbit
