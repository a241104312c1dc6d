// The one finite-difference gradient harness every differentiable op's test uses.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lowbit::test {

struct GradcheckOptions {
  double eps = 1e-2;   // central-difference step (f32 forward: larger steps keep rounding small)
  double atol = 2e-3;
  double rtol = 2e-2;
};

struct GradcheckResult {
  bool ok = true;
  std::string detail;  // the worst element: input, index, analytic, numeric
};

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Compares the analytic gradient of L = sum(f(inputs) * w) (w fixed random) for every
// input that requires a gradient with central differences of L computed in double.
GradcheckResult gradcheck(const Fn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {});

// A random f32 tensor requiring a gradient, with values in [lo, hi) and, where `gap` > 0,
// at least `gap` away from each of `kinks` (so finite differences never straddle one).
Tensor random_input(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1,
                    std::vector<double> kinks = {}, double gap = 0);

}  // namespace lowbit::test

// REQUIREs that gradcheck passes, printing the worst element when it does not.
#define REQUIRE_GRADCHECK(...)                        \
  do {                                                \
    auto _gc = ::lowbit::test::gradcheck(__VA_ARGS__); \
    INFO(_gc.detail);                                 \
    REQUIRE(_gc.ok);                                  \
  } while (0)
