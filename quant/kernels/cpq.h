// Logistic-bin quantizer kernels: CPQ forward + multi-class STE backward (with DropBits level
// masks and learned-bit gate weights), DropBits mask sampling, and RQ's concrete sample and
// its gradient. The interface each backend implements (cpu:: in quant/cpu/, cuda:: in quant/cuda/).
#pragma once

#include <cstdint>
#include <vector>

#include "../../core/rng.h"
#include "../../core/tensor.h"
#include "../cpq_kernel.h"
#include "../grid.h"
#include "logistic_math.h"

namespace lowbit {

// ---- CPQ ----
// x, y, dx f32 of one shape on one device; elem_mask u8 of x's shape on that device (per-element
// DropBits) or undefined. The tables of `a` (alpha, sigma, mask.weight, mask.drop_bit) are HOST
// pointers (a.mask.elem_mask is ignored: the mask comes from elem_mask); the semantics are those
// of cpq_forward / cpq_backward in quant/cpq_kernel.h.
using CpqForwardKernel = void(const Tensor& x, const CpqArgs& a, const Tensor& elem_mask, Tensor& y);
// out.dx is ignored (dx is written when defined); out.dalpha/dsigma/dweight/group are host arrays.
using CpqBackwardKernel = void(const Tensor& x, const Tensor& dy, const CpqArgs& a, const Tensor& elem_mask,
                               const CpqGradOut& out, Tensor& dx);

// ---- DropBits masks ----
// Level l (2..bits) of an element is dropped when the 16-bit half (bits - l) % 2 of word
// (bits - l) / 2 of its Philox block is below threshold[l - 1]; bit (l - 1) of the mask byte.
LOWBIT_HOST_DEVICE inline uint8_t dropbits_mask(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, int bits,
                                                const uint32_t* threshold) {
  const uint32_t words[4] = {w0, w1, w2, w3};
  uint8_t m = 0;
  for (int l = bits; l >= 2; --l) {
    const int i = bits - l;
    const uint32_t u = (words[i / 2] >> (16 * (i % 2))) & 0xffffu;
    if (u < threshold[l - 1]) m = static_cast<uint8_t>(m | (1u << (l - 1)));
  }
  return m;
}
struct DropBitsDraw {
  int bits = 1;
  uint32_t threshold[8] = {};
};
// out[i] = dropbits_mask(gen.block(base + i)) for every element of out (u8, on its device).
using DropBitsMaskKernel = void(const Generator& gen, uint64_t base, const DropBitsDraw& d, Tensor& out);

// ---- RQ (concrete relaxation) ----
// One draw: the grid, temperature lambda, the ST switch, the local window (bins either side of
// the nearest point; 0 = the full grid), the Philox stream and first counter (element i, block
// j of its levels uses counter base + i * ceil(levels/4) + j), and alpha/sigma (HOST arrays,
// one entry or one per channel along dim 0).
struct RqArgs {
  GridRange range;
  float temperature = 1.0f;
  bool straight_through = true;
  int window = 0;
  Generator gen;
  uint64_t base = 0;
  const float* alpha = nullptr;
  const float* sigma = nullptr;
  int64_t alpha_size = 1, sigma_size = 1;
};
// The per-element constants of rq_element (logistic_math.h) for one draw.
inline RqElementSetup rq_element_setup(const RqArgs& a) {
  RqElementSetup e;
  e.qmin = static_cast<float>(a.range.qmin);
  e.qmax = static_cast<float>(a.range.qmax);
  e.lam = a.temperature;
  e.levels = static_cast<int>(a.range.levels());
  e.window = a.window;
  e.straight_through = a.straight_through;
  return e;
}
// y: the sample (soft, or hard with straight_through).
using RqForwardKernel = void(const Tensor& x, const RqArgs& a, Tensor& y);
// dx (f32, x's shape and device) and dalpha/dsigma (host, alpha_size/sigma_size entries,
// accumulated into: the caller zeroes them) for upstream dy; see quant/rq.h for the formulas.
using RqBackwardKernel = void(const Tensor& x, const Tensor& dy, const RqArgs& a, Tensor& dx,
                              std::vector<double>& dalpha, std::vector<double>& dsigma);

namespace cpu {
CpqForwardKernel cpq_forward;
CpqBackwardKernel cpq_backward;
DropBitsMaskKernel dropbits_masks;
RqForwardKernel rq_forward;
RqBackwardKernel rq_backward;
}  // namespace cpu

// Defined in quant/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
CpqForwardKernel cpq_forward;
CpqBackwardKernel cpq_backward;
DropBitsMaskKernel dropbits_masks;
RqForwardKernel rq_forward;
RqBackwardKernel rq_backward;
}  // namespace cuda

}  // namespace lowbit
