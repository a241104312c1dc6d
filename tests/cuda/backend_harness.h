// The CPU-vs-CUDA comparison harness shared by the tests in tests/cuda/ (the ggml
// test-backend-ops idea): a case is a function of f32 inputs, run forward and backward on the
// same random inputs on both devices and compared within its tolerance.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/cuda/runtime.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace backend_harness {

using lowbit::Device;
using lowbit::Generator;
using lowbit::Shape;
using lowbit::Tensor;

using Inputs = std::vector<Tensor>;
using OpFn = std::function<Tensor(const Inputs&)>;

// positive: |randn| + 0.5, for log, sqrt and divisors; ties: floor(2 randn), small integers
// that repeat, so pooling windows hold equal maxima.
enum class Domain { any, positive, ties };

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;  // f32 inputs
  OpFn fn;
  double tol = 1e-5;          // |cpu - cuda| <= tol * (1 + |cpu|), forward and gradients
  Domain domain = Domain::any;
  bool backward = true;
};

inline Tensor make_input(const Shape& s, Domain d, Generator& gen) {
  Tensor t = Tensor::randn(s, gen);
  if (d == Domain::positive) t = lowbit::add(lowbit::abs(t), 0.5);
  if (d == Domain::ties) t = lowbit::floor(lowbit::mul(t, 2.0));
  return t.detach();
}

// The largest violation of |a - b| <= tol * (1 + |a|) (<= 0 when within), and where.
// With tol 0 the values must be equal (NaN matching NaN).
inline std::string compare(const Tensor& cpu, const Tensor& cuda, double tol, double& worst) {
  worst = 0;
  if (cpu.shape() != cuda.shape() || cpu.dtype() != cuda.dtype())
    return "shape/dtype " + lowbit::shape_str(cpu.shape()) + " vs " + lowbit::shape_str(cuda.shape());
  const auto a = cpu.to_vector<double>(), b = cuda.to(Device::cpu()).to_vector<double>();
  std::ostringstream os;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    const double excess = both_nan ? 0 : std::fabs(a[i] - b[i]) - tol * (1 + std::fabs(a[i]));
    if (!(excess <= worst)) {
      worst = std::isnan(excess) ? INFINITY : excess;
      os.str("");
      os << "element " << i << ": cpu " << a[i] << " cuda " << b[i];
    }
  }
  return os.str();
}

// Runs one case on the CPU and on `dev` and CHECKs forward values and every input gradient
// (for a random upstream gradient, so every output element's gradient path counts).
inline void run_case(const OpCase& oc, const Device& dev, uint64_t seed = 42) {
  Generator gen(seed);
  Inputs xc, xd;
  for (const Shape& s : oc.shapes) {
    Tensor t = make_input(s, oc.domain, gen);
    xc.push_back(t.clone().detach().set_requires_grad(oc.backward));
    xd.push_back(t.to(dev).set_requires_grad(oc.backward));
  }
  Tensor yc = oc.fn(xc), yd = oc.fn(xd);
  REQUIRE(yd.device() == dev);
  double worst = 0;
  std::string where = compare(yc.detach(), yd.detach(), oc.tol, worst);
  INFO(oc.name << " forward " << where);
  CHECK(worst <= 0);
  if (!oc.backward) return;
  Tensor w = Tensor::randn(yc.shape(), gen);
  lowbit::sum(lowbit::mul(yc, w)).backward();
  lowbit::sum(lowbit::mul(yd, w.to(dev))).backward();
  for (size_t i = 0; i < xc.size(); ++i) {
    REQUIRE(xc[i].grad().defined() == xd[i].grad().defined());
    if (!xc[i].grad().defined()) continue;
    CHECK(xd[i].grad().device() == dev);
    where = compare(xc[i].grad(), xd[i].grad(), oc.tol, worst);
    INFO(oc.name << " gradient of input " << i << " " << where);
    CHECK(worst <= 0);
  }
}

}  // namespace backend_harness
