// The CPU-vs-CUDA harness (the ggml test-backend-ops idea): every case runs forward and
// backward on the same random inputs on both devices and compares within its tolerance.
// Adding an op is one line in cases(). All cases need a GPU ([gpu]).
#include <catch2/catch.hpp>

#include "backend_harness.h"
#include "core/cuda/runtime.h"
#include "core/ops/elementwise.h"
#include "core/ops/linalg.h"
#include "core/ops/loss.h"
#include "core/ops/reduce.h"
#include "core/ops/shape_ops.h"
#include "core/ops/softmax.h"
#include "core/rng.h"
#include "core/tensor.h"

using namespace lowbit;

namespace {

using namespace backend_harness;

// Targets for the loss cases, made on the device of the logits (fixed values, -100 ignored).
Tensor targets(const Tensor& like, std::vector<int64_t> t) {
  const int64_t n = static_cast<int64_t>(t.size());
  return Tensor::from_vector<int64_t>(t, {n}).to(like.device());
}

std::vector<OpCase> cases() {
  std::vector<OpCase> c = {
      // ---- binary with broadcasting ----
      {"add same shape", {{3, 4}, {3, 4}}, [](const Inputs& x) { return add(x[0], x[1]); }},
      {"add broadcast", {{4, 1, 5}, {3, 1}}, [](const Inputs& x) { return add(x[0], x[1]); }},
      {"sub broadcast", {{2, 3, 4}, {4}}, [](const Inputs& x) { return sub(x[0], x[1]); }},
      {"mul broadcast", {{2, 3, 4}, {3, 1}}, [](const Inputs& x) { return mul(x[0], x[1]); }},
      {"div broadcast", {{2, 3, 4}, {1, 4}}, [](const Inputs& x) { return div(x[0], x[1]); }, 1e-5, Domain::positive},
      {"mul scalar", {{5, 6}}, [](const Inputs& x) { return mul(x[0], 2.5); }},
      {"minimum", {{3, 4}, {4}}, [](const Inputs& x) { return minimum(x[0], x[1]); }},
      {"maximum", {{3, 4}, {3, 1}}, [](const Inputs& x) { return maximum(x[0], x[1]); }},
      {"gt", {{3, 4}, {4}}, [](const Inputs& x) { return gt(x[0], x[1]); }, 0, Domain::any, false},
      {"le", {{3, 4}, {3, 4}}, [](const Inputs& x) { return le(x[0], x[1]); }, 0, Domain::any, false},
      {"eq self", {{6}}, [](const Inputs& x) { return eq(x[0], x[0]); }, 0, Domain::any, false},
      {"where", {{3, 4}, {3, 4}, {4}},
       [](const Inputs& x) { return where(gt(x[0], Tensor::zeros({}, DType::f32, x[0].device())), x[1], x[2]); }},
      // ---- unary ----
      {"neg", {{7, 3}}, [](const Inputs& x) { return neg(x[0]); }},
      {"pow 2", {{7, 3}}, [](const Inputs& x) { return pow(x[0], 2.0); }},
      {"pow 1.5", {{7, 3}}, [](const Inputs& x) { return pow(x[0], 1.5); }, 1e-5, Domain::positive},
      {"exp", {{7, 3}}, [](const Inputs& x) { return exp(x[0]); }},
      {"log", {{7, 3}}, [](const Inputs& x) { return log(x[0]); }, 1e-5, Domain::positive},
      {"sqrt", {{7, 3}}, [](const Inputs& x) { return sqrt(x[0]); }, 1e-5, Domain::positive},
      {"abs", {{7, 3}}, [](const Inputs& x) { return abs(x[0]); }},
      {"tanh", {{7, 3}}, [](const Inputs& x) { return tanh(x[0]); }},
      {"sigmoid", {{7, 3}}, [](const Inputs& x) { return sigmoid(x[0]); }},
      {"relu", {{7, 3}}, [](const Inputs& x) { return relu(x[0]); }},
      {"clamp", {{7, 3}}, [](const Inputs& x) { return clamp(x[0], -0.5, 0.7); }},
      {"sign", {{7, 3}}, [](const Inputs& x) { return sign(x[0]); }},
      {"round", {{7, 3}}, [](const Inputs& x) { return round(mul(x[0], 3.0)); }},
      {"floor", {{7, 3}}, [](const Inputs& x) { return floor(mul(x[0], 3.0)); }},
      {"ceil", {{7, 3}}, [](const Inputs& x) { return ceil(mul(x[0], 3.0)); }},
      {"cast f32->i32->f32", {{9}}, [](const Inputs& x) { return cast(cast(mul(x[0], 10.0), DType::i32), DType::f32); },
       0, Domain::any, false},
      {"sum_to", {{4, 3, 5}}, [](const Inputs& x) { return sum_to(x[0], {3, 1}); }, 1e-5},
      // ---- reductions ----
      {"sum all", {{37, 29}}, [](const Inputs& x) { return sum(x[0]); }, 1e-5},
      {"sum axis 1 (long rows)", {{16, 1000}}, [](const Inputs& x) { return sum(x[0], {1}); }, 1e-5},
      {"sum axes 0,2 keepdim", {{6, 5, 7}}, [](const Inputs& x) { return sum(x[0], {0, 2}, true); }, 1e-5},
      {"mean axis 0", {{300, 4}}, [](const Inputs& x) { return mean(x[0], {0}); }, 1e-5},
      {"max axis 1", {{8, 300}}, [](const Inputs& x) { return max(x[0], {1}); }},
      {"min all", {{13, 11}}, [](const Inputs& x) { return min(x[0]); }},
      {"argmax axis 0", {{50, 6}}, [](const Inputs& x) { return argmax(x[0], 0); }, 0, Domain::any, false},
      {"argmin axis 1", {{6, 50}}, [](const Inputs& x) { return argmin(x[0], 1); }, 0, Domain::any, false},
      {"logsumexp axis 1", {{5, 40}}, [](const Inputs& x) { return logsumexp(x[0], {1}); }, 1e-5},
      {"var axis 1", {{5, 40}}, [](const Inputs& x) { return var(x[0], {1}); }, 1e-5},
      // ---- softmax family ----
      {"softmax last", {{6, 10}}, [](const Inputs& x) { return softmax(x[0], -1); }},
      {"softmax long rows", {{3, 1000}}, [](const Inputs& x) { return softmax(x[0], -1); }},
      {"softmax inner axis", {{2, 5, 3}}, [](const Inputs& x) { return softmax(x[0], 1); }},
      {"log_softmax last", {{6, 10}}, [](const Inputs& x) { return log_softmax(x[0], -1); }},
      {"log_softmax inner axis", {{2, 5, 3}}, [](const Inputs& x) { return log_softmax(x[0], 1); }},
      // ---- losses ----
      {"cross_entropy", {{6, 10}},
       [](const Inputs& x) { return cross_entropy(x[0], targets(x[0], {1, 0, 9, 3, 3, 7})); }},
      {"cross_entropy smoothing ignore", {{6, 10}},
       [](const Inputs& x) {
         CrossEntropyOptions o;
         o.label_smoothing = 0.1;
         return cross_entropy(x[0], targets(x[0], {1, -100, 9, 3, 3, 7}), o);
       }},
      {"cross_entropy sum 100 classes", {{4, 100}},
       [](const Inputs& x) {
         CrossEntropyOptions o;
         o.reduction = Reduction::sum;
         return cross_entropy(x[0], targets(x[0], {99, 0, 50, 7}), o);
       }},
      {"nll_loss", {{5, 4}},
       [](const Inputs& x) { return nll_loss(log_softmax(x[0], 1), targets(x[0], {0, 3, 2, -100, 1})); }},
      // ---- shape ops ----
      {"expand", {{3, 1, 4}}, [](const Inputs& x) { return expand(x[0], {2, 3, 5, 4}); }},
      {"permute", {{2, 3, 4}}, [](const Inputs& x) { return permute(x[0], {2, 0, 1}); }},
      {"transpose", {{5, 7}}, [](const Inputs& x) { return transpose(x[0], 0, 1); }},
      // ---- GEMM (cuBLAS, TF32 off) ----
      {"matmul", {{5, 7}, {7, 3}}, [](const Inputs& x) { return matmul(x[0], x[1]); }, 1e-4},
      {"matmul batched x 2-D", {{2, 5, 7}, {7, 3}}, [](const Inputs& x) { return matmul(x[0], x[1]); }, 1e-4},
      {"matmul batched", {{2, 5, 7}, {2, 7, 3}}, [](const Inputs& x) { return matmul(x[0], x[1]); }, 1e-4},
      {"matmul large", {{64, 300}, {300, 96}}, [](const Inputs& x) { return matmul(x[0], x[1]); }, 1e-4},
      {"linear", {{4, 6}, {3, 6}, {3}}, [](const Inputs& x) { return linear(x[0], x[1], x[2]); }, 1e-4},
      {"linear 3-D no bias", {{2, 4, 6}, {3, 6}}, [](const Inputs& x) { return linear(x[0], x[1]); }, 1e-4},
      {"mlp step", {{8, 20}, {16, 20}, {16}, {10, 16}},
       [](const Inputs& x) {
         Tensor h = relu(linear(x[0], x[1], x[2]));
         return cross_entropy(linear(h, x[3]), targets(x[0], {0, 1, 2, 3, 4, 5, 6, 7}));
       },
       1e-4},
  };
  return c;
}

}  // namespace

TEST_CASE("cuda backend ops match the CPU forward and backward", "[cuda][gpu]") {
  if (!cuda::is_available()) {
    WARN("no CUDA device: test body not executed");
    return;
  }
  const Device dev = Device::cuda(0);
  for (const OpCase& oc : cases()) {
    SECTION(oc.name) { run_case(oc, dev); }
  }
}

