// Dropout layer: inverted dropout while training, identity in eval, with its own Generator.
#pragma once

#include "../core/rng.h"
#include "module.h"

namespace lowbit {

class Dropout : public Module {
 public:
  // The layer's generator is seeded with a draw from default_generator(), so manual_seed
  // fixes it; set_generator replaces it (e.g. a split of the run's generator).
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;

  double p() const { return p_; }
  void set_generator(const Generator& gen) { gen_ = gen; }
  Generator* generator() override { return &gen_; }

 private:
  double p_;
  Generator gen_;
};

}  // namespace lowbit
