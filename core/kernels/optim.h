// Optimizer update kernels (optim/): the interface each backend implements (cpu:: here, cuda:: beside it).
// Each is one in-place pass over a parameter; the formulas are documented in optim/sgd.h and
// optim/adam.h, and every backend uses the same per-element arithmetic (double, rounded to f32
// where the state is stored), so a step on CUDA matches a step on the CPU.
#pragma once

#include <vector>

#include "../tensor.h"

namespace lowbit {

// One SGD step's constants (group values already resolved).
struct SgdStep {
  double lr = 0, weight_decay = 0, momentum = 0;
  double damp = 1;        // 1 - dampening
  bool nesterov = false;
  bool first = false;     // the momentum buffer holds no history yet (it is overwritten with d)
};
// p -= lr * d, d = g + wd*p, through momentum_buffer `buf` when momentum > 0 (undefined otherwise).
using SgdUpdateKernel = void(Tensor& p, const Tensor& g, Tensor& buf, const SgdStep& s);

// One Adam/AdamW step's constants, computed once on the host in double.
struct AdamStep {
  double step_size = 0;  // lr / (1 - beta1^t)
  double bc2_sqrt = 1;   // sqrt(1 - beta2^t)
  double l2 = 0;         // Adam's weight decay added to g (0 for AdamW)
  double shrink = 1;     // AdamW's 1 - lr*wd (1 for Adam)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};
// Updates p, exp_avg m, exp_avg_sq v and (amsgrad; undefined otherwise) max_exp_avg_sq vmax.
using AdamUpdateKernel = void(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, Tensor& vmax, const AdamStep& s);

// Blocks of this many elements are summed in double in index order; blocks are then added in order.
inline constexpr int64_t kSumSquaresBlock = 4096;
// out[k] = sum of grads[k]^2 with that blocking (f32 tensors, all on one device), so the global
// norm is bit-identical for any thread count and on either backend.
using SumSquaresKernel = void(const std::vector<Tensor>& grads, std::vector<double>& out);
// g *= c in place (f32).
using ScaleInPlaceKernel = void(Tensor& g, float c);

namespace cpu {
SgdUpdateKernel sgd_update;
AdamUpdateKernel adam_update;
SumSquaresKernel sum_squares;
ScaleInPlaceKernel scale_in_place;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
SgdUpdateKernel sgd_update;
AdamUpdateKernel adam_update;
SumSquaresKernel sum_squares;
ScaleInPlaceKernel scale_in_place;
}  // namespace cuda

}  // namespace lowbit
