// Uniform-grid quantizer kernels (grid round/clamp, ste_uniform and lsq backwards, abs-max
// statistics): the interface each backend implements (cpu:: in quant/cpu/, cuda:: in quant/cuda/).
#pragma once

#include <vector>

#include "../../core/tensor.h"
#include "../grid.h"

namespace lowbit {

// In every kernel x is f32 (any shape, contiguous) and alpha f32 [] or [C] with C = x.shape[0]
// (per channel along dim 0), on any device: a kernel reads alpha from where it needs it.
// Outputs are allocated by the caller on x's device.

// y = grid_value(x, alpha_c, qmin, qmax) per element (f32).
using GridQuantizeKernel = void(const Tensor& x, const Tensor& alpha, GridRange range, Tensor& y);
// codes = grid_code(x, alpha_c, qmin, qmax) per element (i32).
using GridCodesKernel = void(const Tensor& x, const Tensor& alpha, GridRange range, Tensor& codes);
// The clipped STE: dx = dy where qmin <= x/alpha_c <= qmax, else 0.
using SteBackwardKernel = void(const Tensor& x, const Tensor& alpha, GridRange range, const Tensor& dy, Tensor& dx);
// LSQ: dx as the clipped STE (skipped when dx is undefined) and, when dalpha is given, per
// channel sum dy * {round(v) - v inside, qmin below, qmax above} (v = x/alpha_c) in double,
// summed in a fixed order (alpha.numel() entries, overwritten).
using LsqBackwardKernel = void(const Tensor& x, const Tensor& alpha, GridRange range, const Tensor& dy, Tensor& dx,
                               std::vector<double>* dalpha);
// max |x| per slice along dim 0 (channels == 1: the whole tensor); NaN is ignored, 0 for empty.
using AbsMaxKernel = void(const Tensor& x, int64_t channels, std::vector<float>& out);

namespace cpu {
GridQuantizeKernel grid_quantize;
GridCodesKernel grid_codes;
SteBackwardKernel ste_backward;
LsqBackwardKernel lsq_backward;
AbsMaxKernel abs_max;
}  // namespace cpu

// Defined in quant/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
GridQuantizeKernel grid_quantize;
GridCodesKernel grid_codes;
SteBackwardKernel ste_backward;
LsqBackwardKernel lsq_backward;
AbsMaxKernel abs_max;
}  // namespace cuda

}  // namespace lowbit
