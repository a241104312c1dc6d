// CPU batch norm: per-channel statistics accumulated in double in an order fixed by the
// sizes alone (never by the thread count), then one fused element-wise pass.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernels/batch_norm.h"
#include "../parallel.h"

namespace lowbit::cpu {
namespace {

struct Layout {
  int64_t n, c, s;  // x as [N, C, S]
};
Layout layout_of(const Tensor& x) {
  Layout l{x.size(0), x.size(1), 1};
  for (int64_t a = 2; a < x.dim(); ++a) l.s *= x.size(a);
  return l;
}

// Slices shorter than this are summed along whole channels instead of one by one.
constexpr int64_t kMinSlice = 64;
constexpr int64_t kGrain = 1 << 14;  // elements per task

// Two per-channel sums over [N, C, S]. slice(c, offset, len, a, b) adds elements
// [offset, offset + len) of channel c into a and b. Long slices are summed one (n, c) at a
// time into partials that are then added over n in order; short ones along each channel.
template <class F>
void channel_sums(const Layout& l, F&& slice, std::vector<double>& a, std::vector<double>& b) {
  a.assign(static_cast<size_t>(l.c), 0.0);
  b.assign(static_cast<size_t>(l.c), 0.0);
  if (l.s >= kMinSlice) {
    std::vector<double> pa(static_cast<size_t>(l.n * l.c), 0.0), pb(pa.size(), 0.0);
    parallel_for(l.n * l.c, std::max<int64_t>(1, kGrain / l.s), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) slice(r % l.c, r * l.s, l.s, pa[r], pb[r]);
    });
    for (int64_t n = 0; n < l.n; ++n)
      for (int64_t c = 0; c < l.c; ++c) {
        a[c] += pa[n * l.c + c];
        b[c] += pb[n * l.c + c];
      }
  } else {
    parallel_for(l.c, std::max<int64_t>(1, kGrain / std::max<int64_t>(l.n * l.s, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c)
        for (int64_t n = 0; n < l.n; ++n) slice(c, (n * l.c + c) * l.s, l.s, a[c], b[c]);
    });
  }
}

// Adds sum(f(i)) and sum(g(i)) over i in [0, len) into sa, sb; eight lanes keep the double
// additions independent (so they vectorise) while the order stays fixed.
template <class F>
void lane_sums(int64_t len, F&& f, double& sa, double& sb) {
  double la[8] = {}, lb[8] = {};
  int64_t i = 0;
  for (; i + 8 <= len; i += 8)
    for (int j = 0; j < 8; ++j) f(i + j, la[j], lb[j]);
  double ta = 0, tb = 0;
  for (; i < len; ++i) f(i, ta, tb);
  for (int j = 0; j < 8; ++j) {
    sa += la[j];
    sb += lb[j];
  }
  sa += ta;
  sb += tb;
}

const float* data_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

void batch_norm_stats(const Tensor& x, double eps, double momentum, Tensor& running_mean, Tensor& running_var,
                      Tensor& mean, Tensor& invstd) {
  const Layout l = layout_of(x);
  const float* px = x.data<float>();
  // Sums of x - pivot (the channel's first element) so a large mean does not cancel the variance.
  std::vector<float> pivot(static_cast<size_t>(l.c));
  for (int64_t c = 0; c < l.c; ++c) pivot[c] = px[c * l.s];
  std::vector<double> s1, s2;
  channel_sums(
      l,
      [&](int64_t c, int64_t off, int64_t len, double& a, double& b) {
        const float* p = px + off;
        const double k = pivot[c];
        lane_sums(
            len,
            [&](int64_t i, double& u, double& v) {
              double d = p[i] - k;
              u += d;
              v += d * d;
            },
            a, b);
      },
      s1, s2);
  const double m = static_cast<double>(l.n * l.s);
  float* pm = mean.data<float>();
  float* pi = invstd.data<float>();
  float* rm = running_mean.defined() ? running_mean.data<float>() : nullptr;
  float* rv = running_var.defined() ? running_var.data<float>() : nullptr;
  for (int64_t c = 0; c < l.c; ++c) {
    const double dm = s1[c] / m;
    const double var = std::max(s2[c] / m - dm * dm, 0.0);
    const double mu = pivot[c] + dm;
    pm[c] = static_cast<float>(mu);
    pi[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
    if (rm) rm[c] = static_cast<float>((1 - momentum) * rm[c] + momentum * mu);
    if (rv) rv[c] = static_cast<float>((1 - momentum) * rv[c] + momentum * var * m / (m - 1));
  }
}

void batch_norm_apply(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                      const Tensor& bias, bool relu, Tensor& y) {
  const Layout l = layout_of(x);
  const float *pm = mean.data<float>(), *pi = invstd.data<float>();
  const float *pw = data_or_null(weight), *pb = data_or_null(bias);
  // y = (x - mean) * scale + bias: subtracting first keeps a large mean from cancelling
  // digits, which folding it into one shift (x * scale + shift) would.
  std::vector<float> scale(static_cast<size_t>(l.c)), shift(static_cast<size_t>(l.c));
  for (int64_t c = 0; c < l.c; ++c) {
    scale[c] = (pw ? pw[c] : 1.0f) * pi[c];
    shift[c] = pb ? pb[c] : 0.0f;
  }
  const float* px = x.data<float>();
  float* py = y.data<float>();
  parallel_for(l.n * l.c, std::max<int64_t>(1, kGrain / std::max<int64_t>(l.s, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t c = r % l.c;
      const float mu = pm[c], a = scale[c], b = shift[c];
      const float* p = px + r * l.s;
      float* q = py + r * l.s;
      if (relu)
        for (int64_t i = 0; i < l.s; ++i) q[i] = std::max((p[i] - mu) * a + b, 0.0f);
      else
        for (int64_t i = 0; i < l.s; ++i) q[i] = (p[i] - mu) * a + b;
    }
  });
}

void batch_norm_backward(bool training, const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                         const Tensor& weight, const Tensor& relu_out, Tensor& dx, Tensor& dweight, Tensor& dbias) {
  const Layout l = layout_of(x);
  const float *px = x.data<float>(), *pg = dy.data<float>();
  // A fused ReLU gates dy by its output, in both passes below (never materialised).
  const float* pr = relu_out.defined() ? relu_out.data<float>() : nullptr;
  const float *pm = mean.data<float>(), *pi = invstd.data<float>(), *pw = data_or_null(weight);
  const bool need_sums = dweight.defined() || dbias.defined() || (training && dx.defined());
  // sum_dy[c] = sum(dy), sum_dyxmu[c] = sum(dy * (x - mean)) = sum(dy * xhat) / invstd.
  std::vector<double> sum_dy(static_cast<size_t>(l.c), 0.0), sum_dyxmu(static_cast<size_t>(l.c), 0.0);
  if (need_sums)
    channel_sums(
        l,
        [&](int64_t c, int64_t off, int64_t len, double& a, double& b) {
          const float *g = pg + off, *p = px + off;
          const float mu = pm[c];
          if (pr) {
            const float* r = pr + off;
            lane_sums(
                len,
                [&](int64_t i, double& u, double& v) {
                  const float gi = r[i] > 0.0f ? g[i] : 0.0f;
                  u += gi;
                  v += static_cast<double>(gi) * (p[i] - mu);
                },
                a, b);
            return;
          }
          lane_sums(
              len,
              [&](int64_t i, double& u, double& v) {
                u += g[i];
                v += static_cast<double>(g[i]) * (p[i] - mu);
              },
              a, b);
        },
        sum_dy, sum_dyxmu);
  if (dweight.defined()) {
    float* p = dweight.data<float>();
    for (int64_t c = 0; c < l.c; ++c) p[c] = static_cast<float>(sum_dyxmu[c] * pi[c]);
  }
  if (dbias.defined()) {
    float* p = dbias.data<float>();
    for (int64_t c = 0; c < l.c; ++c) p[c] = static_cast<float>(sum_dy[c]);
  }
  if (!dx.defined()) return;
  // dx = k dy - t (x - mean) - u with k = w invstd, and in training
  // t = k invstd^2 sum(dy (x - mean)) / M, u = k sum(dy) / M (both zero in eval).
  const double m = static_cast<double>(l.n * l.s);
  std::vector<float> k(static_cast<size_t>(l.c)), t(k.size(), 0.0f), u(k.size(), 0.0f);
  for (int64_t c = 0; c < l.c; ++c) {
    const double kc = (pw ? pw[c] : 1.0) * static_cast<double>(pi[c]);
    k[c] = static_cast<float>(kc);
    if (training) {
      t[c] = static_cast<float>(kc * pi[c] * pi[c] * sum_dyxmu[c] / m);
      u[c] = static_cast<float>(kc * sum_dy[c] / m);
    }
  }
  float* pd = dx.data<float>();
  parallel_for(l.n * l.c, std::max<int64_t>(1, kGrain / std::max<int64_t>(l.s, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t c = r % l.c;
      const float kc = k[c], tc = t[c], uc = u[c], mu = pm[c];
      const float *g = pg + r * l.s, *p = px + r * l.s;
      float* q = pd + r * l.s;
      if (pr) {
        const float* o = pr + r * l.s;
        for (int64_t i = 0; i < l.s; ++i) q[i] = kc * (o[i] > 0.0f ? g[i] : 0.0f) - tc * (p[i] - mu) - uc;
      } else {
        for (int64_t i = 0; i < l.s; ++i) q[i] = kc * g[i] - tc * (p[i] - mu) - uc;
      }
    }
  });
}

}  // namespace lowbit::cpu
