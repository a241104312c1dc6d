// Sequential: children "0", "1", ... applied in order, as torch.nn.Sequential.
#pragma once

#include <initializer_list>

#include "module.h"

namespace lowbit {

class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> modules);
  // Registers m under the next index and returns it typed.
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    add_child(std::to_string(size_), m);
    ++size_;
    return m;
  }
  Tensor forward(const Tensor& x) override;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  ModulePtr operator[](size_t i) const;

 private:
  size_t size_ = 0;
};

}  // namespace lowbit
