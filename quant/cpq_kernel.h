// The logistic-bin categorical over a uniform grid and the fused CPQ kernels (forward: nearest
// surviving grid point; backward: the multi-class straight-through estimator).
//
// Notation (QUANTIZERS.md, "rq" and "SRQ / CPQ"): codes k in [qmin, qmax], grid g_k = alpha * k,
// each point owns the bin (g_k - alpha/2, g_k + alpha/2]. With logistic noise of scale sigma,
//   r_k = Sig((g_k + alpha/2 - x)/sigma) - Sig((g_k - alpha/2 - x)/sigma),
//   pi_k = v_k r_k / sum_j v_j r_j                     (truncated to the grid and renormalised),
// where v_k >= 0 weighs code k: 1 by default, 0 for a point DropBits dropped, a gate value for
// learned bit-widths. Everything below is computed in "code space" (u = x / alpha,
// s = sigma / alpha) from the tail masses T_j = Sig(-|t_j|) beyond each bin boundary
// t_j = (b_j - x)/sigma, so no difference of two sigmoids near 1 is ever taken; when x lies
// outside every surviving bin, all masses are scaled by exp(omega) (omega = the distance to the
// nearest surviving boundary, in units of sigma) so they do not underflow.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>

#include "grid.h"
#include "kernels/logistic_math.h"  // fast_exp, tail_exp, bin_masses

namespace lowbit {

// Which codes each element may use. A code k (0-based index into the range) has weight
// weight[k] (null: all 1) and is dropped for an element whose mask byte has a bit in common
// with drop_bit[k] (null or 0: never dropped). Element masks come from elem_mask (one byte
// per element) or, when that is null, the one tensor_mask for every element.
struct CodeMask {
  const float* weight = nullptr;       // [n codes]
  const uint8_t* drop_bit = nullptr;   // [n codes]
  const uint8_t* elem_mask = nullptr;  // [numel]
  uint8_t tensor_mask = 0;
  bool any() const { return weight || (drop_bit && (elem_mask || tensor_mask)); }
};

// One tensor's quantizer state for the kernels. x has shape [channels, inner] (channels = 1
// per tensor); alpha has `channels` entries or one; sigma likewise.
struct CpqArgs {
  GridRange range;
  const float* alpha = nullptr;
  const float* sigma = nullptr;
  int64_t alpha_size = 1, sigma_size = 1;
  int64_t channels = 1;
  CodeMask mask;
};

// y[i] = alpha_c * k*, k* the surviving code nearest to x[i] / alpha_c (ties: nearbyint when
// that code survives, else the lower code). x, y: [numel]. The mode of pi, so it is also the
// eval quantizer (with no mask) and equals clamp(nearbyint(x/alpha), qmin, qmax)*alpha.
void cpq_forward(const float* x, int64_t numel, const CpqArgs& a, float* y);

// Gradients of the multi-class STE x_hat = sg(g_k*) + m - sg(m), m = sum_k pi_k sg(g_k):
//   dx = dy * dm/dx;  dalpha_c = sum dy * (dm/dalpha [+ k*, the direct term of x_hat = alpha k*]);
//   dsigma = sum dy * dm/dsigma;  dweight_g = sum dy * sum_{group(k)=g} dm/dv_k  (codes with v_k > 0),
//   dm/dv_k = alpha r_k (k - mu) / R.
// With the boundary densities P_j = Sig'(t_j) and kappa_j = v_{j-1}(j-1-mu) - v_j(j-mu) (mu the
// 0-based mean code, v outside the range 0): dm/dtheta = (alpha/R) sum_j kappa_j P_j dt_j/dtheta.
// Any output pointer may be null (not computed). dalpha/dsigma have alpha_size/sigma_size
// entries; all are overwritten. Partial sums are taken over fixed blocks and
// added in block order, so every result is independent of the thread count.
struct CpqGradOut {
  float* dx = nullptr;       // [numel]
  double* dalpha = nullptr;  // [alpha_size]
  double* dsigma = nullptr;  // [sigma_size]
  // Weight gradients summed over groups of codes (e.g. the DropBits levels a gate weighs):
  // dweight[g] = sum over codes k with group[k] == g (group[k] < 0: none). groups <= 16.
  double* dweight = nullptr;       // [groups]
  const int32_t* group = nullptr;  // [n codes]
  int groups = 0;
  bool alpha_direct = true;
};
void cpq_backward(const float* x, const float* dy, int64_t numel, const CpqArgs& a, const CpqGradOut& out);

// pi over the n codes for one value (a scalar reference, used by tests and reports). `v` is
// the per-code weight (null: all 1). When every surviving mass underflows, pi is one-hot at
// the nearest surviving code. pi: [n].
void categorical_probs(float x, float alpha, float sigma, GridRange range, const float* v, float* pi);

}  // namespace lowbit
