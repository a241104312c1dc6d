// Sequential container.
#include "sequential.h"

#include <typeinfo>

#include "activation.h"
#include "batch_norm.h"

namespace lowbit {

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Module("Sequential") {
  for (const auto& m : modules) push_back(m);
}

// A BatchNorm directly followed by a plain ReLU runs as one fused op (batch_norm_relu): the
// same values and gradients with one pass over the activation each way instead of two.
Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  const auto& children = named_children();
  for (size_t i = 0; i < children.size(); ++i) {
    Module* m = children[i].second.get();
    // Exact types only: a subclass may override forward, and that must run.
    const bool plain_bn = typeid(*m) == typeid(BatchNorm2d) || typeid(*m) == typeid(BatchNorm1d);
    if (plain_bn && i + 1 < children.size() && typeid(*children[i + 1].second) == typeid(ReLU)) {
      y = static_cast<BatchNormBase*>(m)->forward_relu(y);
      ++i;
      continue;
    }
    y = m->forward(y);
  }
  return y;
}

ModulePtr Sequential::operator[](size_t i) const {
  LOWBIT_CHECK(i < size_, "Sequential", "index ", i, " out of range for ", size_, " modules");
  return child(std::to_string(i));
}

}  // namespace lowbit
