// CPU class-index losses: target checks, fused cross-entropy forward/backward, NLL.
#include <cmath>
#include <cstring>
#include <limits>

#include "../kernels/loss.h"
#include "../parallel.h"

namespace lowbit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // logits per task

// [N, C, inner] from the scores' shape (dim >= 2).
struct Layout {
  int64_t n = 1, c = 1, inner = 1;
  int64_t samples() const { return n * inner; }
  // Offset of class 0 of sample s; classes are `inner` apart.
  int64_t base(int64_t s) const { return (s / inner) * c * inner + s % inner; }
};

Layout layout_of(const Shape& s) {
  Layout l;
  l.n = s[0];
  l.c = s[1];
  for (size_t i = 2; i < s.size(); ++i) l.inner *= s[i];
  return l;
}

// Calls f(s, t) for every sample s in parallel, t its target read as int64.
template <class F>
void for_samples(const Layout& l, const Tensor& target, F&& f) {
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(l.c, 1));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* pt = target.data<T>();
    parallel_for(l.samples(), grain, [&](int64_t b, int64_t e) {
      for (int64_t s = b; s < e; ++s) f(s, static_cast<int64_t>(pt[s]));
    });
  };
  if (target.dtype() == DType::i64) run(int64_t{});
  else run(int32_t{});
}

}  // namespace

TargetScan scan_targets(const Tensor& target, int64_t classes, int64_t ignore_index) {
  TargetScan r;
  auto scan = [&](auto tag) {
    using T = decltype(tag);
    const T* pt = target.data<T>();
    for (int64_t i = 0; i < target.numel(); ++i) {
      const int64_t t = pt[i];
      if (t == ignore_index) continue;
      if (t < 0 || t >= classes) {
        r.first_bad = i;
        return;
      }
      ++r.valid;
    }
  };
  if (target.dtype() == DType::i64) scan(int64_t{});
  else scan(int32_t{});
  return r;
}

void cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index, float smoothing, Tensor& loss,
                   Tensor& lse) {
  const Layout l = layout_of(logits.shape());
  const float* px = logits.data<float>();
  float* pl = loss.data<float>();
  float* pz = lse.data<float>();
  const double eps = smoothing;
  for_samples(l, target, [&](int64_t s, int64_t t) {
    if (t == ignore_index) {
      pl[s] = 0;
      pz[s] = 0;
      return;
    }
    const float* x = px + l.base(s);
    const int64_t st = l.inner;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < l.c; ++c) m = std::max(m, x[c * st]);
    double sum_exp = 0, sum_x = 0;
    for (int64_t c = 0; c < l.c; ++c) {
      sum_exp += std::exp(x[c * st] - m);
      sum_x += x[c * st];
    }
    const double z = m + std::log(sum_exp);
    pz[s] = static_cast<float>(z);
    double v = (1 - eps) * (z - x[t * st]);
    if (eps != 0) v += eps * (z - sum_x / static_cast<double>(l.c));
    pl[s] = static_cast<float>(v);
  });
}

void cross_entropy_backward(const Tensor& dloss, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t ignore_index, float smoothing, Tensor& dx) {
  const Layout l = layout_of(logits.shape());
  const float* px = logits.data<float>();
  const float* pg = dloss.data<float>();
  const float* pz = lse.data<float>();
  float* pd = dx.data<float>();
  const bool per_sample = dloss.numel() != 1;
  const float off = smoothing / static_cast<float>(l.c);  // every class's share of the smoothed target
  const float hit = 1.0f - smoothing;                      // the target class's extra share
  for_samples(l, target, [&](int64_t s, int64_t t) {
    const int64_t b = l.base(s), st = l.inner;
    float* d = pd + b;
    if (t == ignore_index) {
      for (int64_t c = 0; c < l.c; ++c) d[c * st] = 0;
      return;
    }
    const float* x = px + b;
    const float g = pg[per_sample ? s : 0], z = pz[s];
    for (int64_t c = 0; c < l.c; ++c) d[c * st] = g * (std::exp(x[c * st] - z) - off);
    d[t * st] -= g * hit;
  });
}

void nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index, Tensor& loss) {
  const Layout l = layout_of(log_probs.shape());
  const float* px = log_probs.data<float>();
  float* pl = loss.data<float>();
  for_samples(l, target, [&](int64_t s, int64_t t) { pl[s] = t == ignore_index ? 0.0f : -px[l.base(s) + t * l.inner]; });
}

void nll_loss_backward(const Tensor& dloss, const Tensor& target, int64_t ignore_index, Tensor& dx) {
  const Layout l = layout_of(dx.shape());
  const float* pg = dloss.data<float>();
  float* pd = dx.data<float>();
  const bool per_sample = dloss.numel() != 1;
  std::memset(pd, 0, dx.nbytes());
  for_samples(l, target, [&](int64_t s, int64_t t) {
    if (t != ignore_index) pd[l.base(s) + t * l.inner] = -pg[per_sample ? s : 0];
  });
}

}  // namespace lowbit::cpu
