// Dropout layer.
#include "dropout.h"

#include "../core/ops/dropout.h"

namespace lowbit {

Dropout::Dropout(double p) : Module("Dropout"), p_(p), gen_(default_generator().next_u64()) {
  LOWBIT_CHECK(p >= 0 && p <= 1, "Dropout", "p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), gen_); }

}  // namespace lowbit
