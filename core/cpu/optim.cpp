// CPU optimizer kernels: the fused in-place SGD and Adam updates (one pass over each parameter,
// arithmetic in double per element) and the blockwise sum of squares of gradient clipping.
// Moved unchanged from optim/*.cpp: the results are bit-identical to those loops.
#include <algorithm>
#include <cmath>

#include "../kernels/optim.h"
#include "../parallel.h"

namespace lowbit::cpu {
namespace {
constexpr int64_t kOptimGrain = 1 << 15;  // elements per parallel chunk of the update loops
}  // namespace

void sgd_update(Tensor& p, const Tensor& g, Tensor& buf, const SgdStep& s) {
  const double lr = s.lr, wd = s.weight_decay, mom = s.momentum;
  const double damp = s.damp;
  const bool nesterov = s.nesterov, first = s.first;
  float* pp = p.data<float>();
  const float* gp = g.data<float>();
  float* bp = buf.defined() ? buf.data<float>() : nullptr;
  parallel_for(p.numel(), kOptimGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double d = static_cast<double>(gp[i]) + wd * pp[i];
      if (bp) {
        double bv = first ? d : mom * bp[i] + damp * d;
        bp[i] = static_cast<float>(bv);
        d = nesterov ? d + mom * bp[i] : static_cast<double>(bp[i]);
      }
      pp[i] = static_cast<float>(pp[i] - lr * d);
    }
  });
}

void adam_update(Tensor& p, const Tensor& g, Tensor& mt, Tensor& vt, Tensor& vmaxt, const AdamStep& s) {
  float* m = mt.data<float>();
  float* v = vt.data<float>();
  float* vmax = vmaxt.defined() ? vmaxt.data<float>() : nullptr;
  const double b1 = s.beta1, b2 = s.beta2, eps = s.eps;
  const double step_size = s.step_size, bc2_sqrt = s.bc2_sqrt, l2 = s.l2, shrink = s.shrink;
  float* pp = p.data<float>();
  const float* gp = g.data<float>();
  parallel_for(p.numel(), kOptimGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double w = pp[i] * shrink;
      double gi = gp[i] + l2 * pp[i];
      m[i] = static_cast<float>(b1 * m[i] + (1 - b1) * gi);
      v[i] = static_cast<float>(b2 * v[i] + (1 - b2) * gi * gi);
      double vi = v[i];
      if (vmax) {
        vmax[i] = std::max(vmax[i], v[i]);
        vi = vmax[i];
      }
      pp[i] = static_cast<float>(w - step_size * m[i] / (std::sqrt(vi) / bc2_sqrt + eps));
    }
  });
}

void sum_squares(const std::vector<Tensor>& grads, std::vector<double>& out) {
  out.assign(grads.size(), 0.0);
  for (size_t k = 0; k < grads.size(); ++k) {
    const float* p = grads[k].data<float>();
    const int64_t n = grads[k].numel(), blocks = (n + kSumSquaresBlock - 1) / kSumSquaresBlock;
    std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
    parallel_for(blocks, 8, [&](int64_t b, int64_t e) {
      for (int64_t blk = b; blk < e; ++blk) {
        double acc = 0;
        for (int64_t i = blk * kSumSquaresBlock, end = std::min(n, i + kSumSquaresBlock); i < end; ++i)
          acc += double(p[i]) * p[i];
        partial[static_cast<size_t>(blk)] = acc;
      }
    });
    double total = 0;
    for (double sq : partial) total += sq;
    out[k] = total;
  }
}

void scale_in_place(Tensor& g, float c) {
  float* p = g.data<float>();
  parallel_for(g.numel(), kOptimGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] *= c;
  });
}

}  // namespace lowbit::cpu
