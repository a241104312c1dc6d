// Gradient clipping: blockwise double sums combined in a fixed order (core/kernels/optim.h), so the
// norm is bit-identical for any thread count and on either device.
#include "clip.h"

#include <cmath>

#include "../core/autograd.h"
#include "../core/dispatch.h"
#include "../core/kernels/optim.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(SumSquaresKernel, sum_squares_stub, cpu::sum_squares, LOWBIT_CUDA_KERNEL(cuda::sum_squares));
LOWBIT_DISPATCH_STUB(ScaleInPlaceKernel, scale_in_place_stub, cpu::scale_in_place,
                     LOWBIT_CUDA_KERNEL(cuda::scale_in_place));

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  LOWBIT_CHECK(std::isfinite(max_norm) && max_norm >= 0, "clip_grad_norm", "invalid max_norm = ", max_norm,
               " (expected finite and >= 0)");
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const auto& p : params) {
    LOWBIT_CHECK(p.defined(), "clip_grad_norm", "an undefined parameter tensor");
    Tensor g = p.grad();
    if (!g.defined()) continue;
    LOWBIT_CHECK(g.dtype() == DType::f32, "clip_grad_norm", "gradient must be an f32 tensor, got ",
                 dtype_name(g.dtype()), " ", shape_str(g.shape()));
    LOWBIT_CHECK(grads.empty() || g.device() == grads[0].device(), "clip_grad_norm", "gradient ",
                 shape_str(g.shape()), " is on ", g.device().str(), " but an earlier one is on ",
                 grads[0].device().str(), "; all gradients must be on one device");
    grads.push_back(g);
  }
  if (grads.empty()) return 0;
  // Per-tensor sums in a fixed blocking, added in parameter order (bit-identical on both devices).
  std::vector<double> per_tensor;
  sum_squares_stub[grads[0].device()](grads, per_tensor);
  double sq = 0;
  for (double s : per_tensor) sq += s;
  const double total = std::sqrt(sq);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    const float c = static_cast<float>(coef);
    for (auto& g : grads) scale_in_place_stub[g.device()](g, c);
  }
  return total;
}

double clip_grad_norm(const NamedTensors& params, double max_norm) {
  std::vector<Tensor> ts;
  for (const auto& p : params) ts.push_back(p.second);
  return clip_grad_norm(ts, max_norm);
}

double clip_grad_norm(const Optimizer& optimizer, double max_norm) {
  std::vector<Tensor> ts;
  for (const auto& g : optimizer.groups()) ts.insert(ts.end(), g.params.begin(), g.params.end());
  return clip_grad_norm(ts, max_norm);
}

}  // namespace lowbit
