// Learned bit-widths: nested hard-concrete gates over the DropBits levels (Louizos, Welling and
// Kingma, "Learning Sparse Neural Networks through L0 Regularization", ICLR 2018, eqs. 9-12)
// and their L0 penalty.
#pragma once

#include <vector>

#include "../core/autograd.h"
#include "../core/rng.h"
#include "../core/tensor.h"

namespace lowbit {

// beta = 2/3, gamma = -0.1, zeta = 1.1 (the paper's values).
struct HardConcrete {
  static constexpr double beta = 2.0 / 3.0, gamma = -0.1, zeta = 1.1;
  // u ~ U(0,1): s = Sig((log u - log(1-u) + log_a)/beta), z = clip(s (zeta-gamma) + gamma, 0, 1).
  static double sample(double log_a, double u);
  // The deterministic (eval) gate clip(Sig(log_a)(zeta-gamma) + gamma, 0, 1); exactly 0 when
  // Sig(log_a) <= -gamma/(zeta-gamma) = 1/12, exactly 1 when Sig(log_a) >= 11/12.
  static double eval(double log_a);
  // P(z != 0) = Sig(log_a - beta log(-gamma/zeta)).
  static double p_open(double log_a);
};

// Nested gates over levels 2..L+1 from log_a [L] (level 1 is never gated):
//   z_l = hard-concrete gate of level l (sampled when `training`, else eval()),
//   out_l = prod_{k <= l} z_k      (a coarser level closing closes every finer one).
// Backward: d out_l / d z_k = prod_{j <= l, j != k} z_j;  dz/dlog_a = (zeta-gamma) s(1-s)/beta
// where the clip is inactive (0 where it clips), with s as in sample() (beta = 1 in eval).
// Consumes L counter values of gen when training.
Tensor nested_gates(const Tensor& log_a, bool training, Generator& gen);

// weight * sum_l P(z_l != 0): the expected number of open levels times weight (the cost in
// weights of one level of this layer times lambda). d/dlog_a_l = weight * P (1 - P).
Tensor l0_penalty(const Tensor& log_a, double weight);

// The eval bit-width: 1 + the number of levels whose nested deterministic gate is non-zero.
int open_bits(const Tensor& log_a);
// The nested deterministic gate values (levels 2..L+1).
std::vector<float> eval_gates(const Tensor& log_a);

}  // namespace lowbit
