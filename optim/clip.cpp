// Gradient clipping: blockwise double sums combined in a fixed order, so the norm is bit-identical
// for any thread count.
#include "clip.h"

#include <algorithm>
#include <cmath>

#include "../core/autograd.h"
#include "../core/parallel.h"

namespace lowbit {

namespace {

constexpr int64_t kBlock = 4096;

double sum_squares(const Tensor& g) {
  const float* p = g.data<float>();
  const int64_t n = g.numel(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  parallel_for(blocks, 8, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      double acc = 0;
      for (int64_t i = k * kBlock, end = std::min(n, i + kBlock); i < end; ++i) acc += double(p[i]) * p[i];
      partial[static_cast<size_t>(k)] = acc;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  LOWBIT_CHECK(std::isfinite(max_norm) && max_norm >= 0, "clip_grad_norm", "invalid max_norm = ", max_norm,
               " (expected finite and >= 0)");
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const auto& p : params) {
    LOWBIT_CHECK(p.defined(), "clip_grad_norm", "an undefined parameter tensor");
    Tensor g = p.grad();
    if (!g.defined()) continue;
    LOWBIT_CHECK(g.dtype() == DType::f32 && g.device() == Device::cpu(), "clip_grad_norm",
                 "gradient must be an f32 CPU tensor, got ", dtype_name(g.dtype()));
    grads.push_back(g);
  }
  double sq = 0;
  for (const auto& g : grads) sq += sum_squares(g);
  const double total = std::sqrt(sq);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    const float c = static_cast<float>(coef);
    for (auto& g : grads) {
      float* p = g.data<float>();
      parallel_for(g.numel(), kOptimGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) p[i] *= c;
      });
    }
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
