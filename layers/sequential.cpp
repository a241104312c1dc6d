// Sequential container.
#include "sequential.h"

namespace lowbit {

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Module("Sequential") {
  for (const auto& m : modules) push_back(m);
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [name, m] : named_children()) y = m->forward(y);
  return y;
}

ModulePtr Sequential::operator[](size_t i) const {
  LOWBIT_CHECK(i < size_, "Sequential", "index ", i, " out of range for ", size_, " modules");
  return child(std::to_string(i));
}

}  // namespace lowbit
