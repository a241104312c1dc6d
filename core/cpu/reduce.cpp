// CPU reductions. Accumulation is in double, in an order fixed by the sizes alone: each
// output's reduced range is cut into fixed blocks that are reduced separately and then
// combined in block order, so full reductions use every thread yet give the same bits
// for every thread count.
#include <cmath>
#include <limits>

#include "../kernels/reduce.h"
#include "../parallel.h"

namespace lowbit::cpu {
namespace {

constexpr int64_t kBlock = 1 << 15;  // reduced elements per partial result
constexpr int64_t kChunk = 256;      // kept columns per task when whole rows are read

// x viewed as alternating groups of kept and reduced axes, adjacent axes of the same
// kind merged and size-1 axes dropped.
struct Plan {
  std::vector<int64_t> keep_dims, keep_strides;  // outermost first
  std::vector<int64_t> red_dims, red_strides;
  int64_t n_out = 1, n_red = 1;
};

Plan make_plan(const Shape& s, const std::vector<int64_t>& axes) {
  Plan p;
  Shape st = contiguous_strides(s);
  std::vector<bool> red(s.size(), false);
  for (int64_t a : axes) red[static_cast<size_t>(a)] = true;
  int last = -1;  // 0 keep, 1 reduce
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 1) continue;
    int kind = red[i] ? 1 : 0;
    auto& dims = kind ? p.red_dims : p.keep_dims;
    auto& strides = kind ? p.red_strides : p.keep_strides;
    if (kind == last) {
      dims.back() *= s[i];
      strides.back() = st[i];
    } else {
      dims.push_back(s[i]);
      strides.push_back(st[i]);
    }
    last = kind;
  }
  for (int64_t d : p.keep_dims) p.n_out *= d;
  for (int64_t d : p.red_dims) p.n_red *= d;
  return p;
}

int64_t offset_of(int64_t flat, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides) {
  int64_t off = 0;
  for (size_t d = dims.size(); d-- > 0;) {
    off += (flat % dims[d]) * strides[d];
    flat /= dims[d];
  }
  return off;
}

int64_t num_blocks(int64_t n_red) { return std::max<int64_t>(1, (n_red + kBlock - 1) / kBlock); }

// The innermost kept axis is contiguous, so each reduced index selects a contiguous row
// of outputs (e.g. a sum over the batch of [N, C]): read whole rows, in memory order.
bool rows_layout(const Plan& p) { return !p.keep_dims.empty() && p.keep_strides.back() == 1 && p.n_red > 1; }

// Calls f(r, q, n, stride) for each run of the reduced elements [r0, r1) of one output:
// n elements starting at q, the first being reduced element r.
template <class F>
void for_runs(const float* base, const Plan& p, int64_t r0, int64_t r1, F&& f) {
  if (p.red_dims.empty()) {
    if (r0 < r1) f(int64_t{0}, base, int64_t{1}, int64_t{1});
    return;
  }
  const int64_t inner = p.red_dims.back(), is = p.red_strides.back();
  for (int64_t r = r0; r < r1;) {
    const int64_t n = std::min(inner - r % inner, r1 - r);
    f(r, base + offset_of(r, p.red_dims, p.red_strides), n, is);
    r += n;
  }
}

// Four accumulators break the dependency chain of one long double sum.
template <class G>
double run_sum(const float* q, int64_t n, int64_t s, double c, G g) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += g(q[i * s], c);
    a1 += g(q[(i + 1) * s], c);
    a2 += g(q[(i + 2) * s], c);
    a3 += g(q[(i + 3) * s], c);
  }
  for (; i < n; ++i) a0 += g(q[i * s], c);
  return (a0 + a1) + (a2 + a3);
}

struct Identity {
  double operator()(float v, double) const { return v; }
};
struct SquaredDeviation {
  double operator()(float v, double c) const {
    const double d = static_cast<double>(v) - c;
    return d * d;
  }
};
struct ShiftedExp {
  double operator()(float v, double c) const { return std::exp(v - static_cast<float>(c)); }
};

// Per output: sum over the reduced elements of g(v, center[o]) (center 0 when null).
template <class G>
std::vector<double> sum_reduce(const float* px, const Plan& p, const double* center, G g) {
  const int64_t nb = num_blocks(p.n_red);
  std::vector<double> part(static_cast<size_t>(nb * p.n_out));  // [block][output]
  if (rows_layout(p)) {
    const int64_t inner = p.keep_dims.back(), outer = p.n_out / inner;
    const std::vector<int64_t> od(p.keep_dims.begin(), p.keep_dims.end() - 1);
    const std::vector<int64_t> os(p.keep_strides.begin(), p.keep_strides.end() - 1);
    const int64_t chunks = (inner + kChunk - 1) / kChunk;
    parallel_for(outer * chunks * nb, 1, [&](int64_t b, int64_t e) {
      double acc[kChunk];
      for (int64_t t = b; t < e; ++t) {
        const int64_t blk = t % nb, c0 = (t / nb) % chunks * kChunk, o = t / nb / chunks;
        const int64_t n = std::min(kChunk, inner - c0), first = o * inner + c0;
        const float* base = px + offset_of(o, od, os) + c0;
        std::fill(acc, acc + n, 0.0);
        for (int64_t r = blk * kBlock, r1 = std::min(p.n_red, r + kBlock); r < r1; ++r) {
          const float* q = base + offset_of(r, p.red_dims, p.red_strides);
          if (center) {
            for (int64_t i = 0; i < n; ++i) acc[i] += g(q[i], center[first + i]);
          } else {
            for (int64_t i = 0; i < n; ++i) acc[i] += g(q[i], 0.0);
          }
        }
        std::copy(acc, acc + n, part.begin() + blk * p.n_out + first);
      }
    });
  } else {
    const int64_t per_task = std::max<int64_t>(1, std::min(p.n_red, kBlock));
    parallel_for(p.n_out * nb, std::max<int64_t>(1, 4096 / per_task), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / nb, blk = t % nb;
        const float* base = px + offset_of(o, p.keep_dims, p.keep_strides);
        const double c = center ? center[o] : 0.0;
        double s = 0;
        for_runs(base, p, blk * kBlock, std::min(p.n_red, (blk + 1) * kBlock),
                 [&](int64_t, const float* q, int64_t n, int64_t st) { s += run_sum(q, n, st, c, g); });
        part[static_cast<size_t>(blk * p.n_out + o)] = s;
      }
    });
  }
  if (nb == 1) return part;
  std::vector<double> total(static_cast<size_t>(p.n_out), 0.0);
  for (int64_t blk = 0; blk < nb; ++blk)
    for (int64_t o = 0; o < p.n_out; ++o) total[o] += part[static_cast<size_t>(blk * p.n_out + o)];
  return total;
}

// The running extreme of a slice: NaN propagates (the first NaN wins, as in PyTorch),
// otherwise the first index of the extreme value.
struct Best {
  float v;
  int64_t arg = 0;
  bool nan = false, any = false;
};

bool beats(const Best& a, const Best& b, bool is_max) {  // a replaces an earlier b
  if (b.nan || !a.any) return false;
  return a.nan || !b.any || (is_max ? a.v > b.v : a.v < b.v);
}

// The extreme of one run (arg relative to the run). A branch-free pass over eight lanes
// finds the value, a second its first index. NaN is never selected by the comparisons,
// but poisons the lanes' sums of v * 0 (as inf does), which sends the run to an exact
// scalar search for the first NaN.
Best run_extreme(const float* q, int64_t n, int64_t s, bool is_max) {
  constexpr int kLanes = 8;
  float m[kLanes], z[kLanes] = {};
  for (int j = 0; j < kLanes; ++j) m[j] = q[0];
  int64_t i = 0;
  if (is_max) {
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float v = q[(i + j) * s];
        z[j] += v * 0.0f;
        m[j] = v > m[j] ? v : m[j];
      }
  } else {
    for (; i + kLanes <= n; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float v = q[(i + j) * s];
        z[j] += v * 0.0f;
        m[j] = v < m[j] ? v : m[j];
      }
  }
  float poison = 0, best = m[0];
  for (int j = 0; j < kLanes; ++j) {
    poison += z[j];
    best = is_max ? (m[j] > best ? m[j] : best) : (m[j] < best ? m[j] : best);
  }
  for (; i < n; ++i) {
    const float v = q[i * s];
    poison += v * 0.0f;
    best = is_max ? (v > best ? v : best) : (v < best ? v : best);
  }
  if (poison != 0 || best != best) {
    for (int64_t k = 0; k < n; ++k)
      if (std::isnan(q[k * s])) return {q[k * s], k, true, true};
  }
  // best may still be q[0] = NaN when the NaN search found none: impossible, as q[0] is checked.
  // Test 32 elements at a time without branching, then search the chunk that matched.
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    int hit = 0;
    for (int j = 0; j < 32; ++j) hit |= q[(k + j) * s] == best;
    if (hit) break;
  }
  for (; k < n; ++k)
    if (q[k * s] == best) return {best, k, false, true};
  return {best, 0, false, true};  // not reached: best is one of the run's values
}

std::vector<Best> extreme_reduce(const float* px, const Plan& p, bool is_max) {
  const int64_t nb = num_blocks(p.n_red);
  const Best none{is_max ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity()};
  std::vector<Best> part(static_cast<size_t>(nb * p.n_out), none);
  const int64_t per_task = std::max<int64_t>(1, std::min(p.n_red, kBlock));
  parallel_for(p.n_out * nb, std::max<int64_t>(1, 4096 / per_task), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / nb, blk = t % nb;
      const float* base = px + offset_of(o, p.keep_dims, p.keep_strides);
      Best best = none;
      for_runs(base, p, blk * kBlock, std::min(p.n_red, (blk + 1) * kBlock),
               [&](int64_t r, const float* q, int64_t n, int64_t st) {
                 if (best.nan) return;
                 const Best cand = run_extreme(q, n, st, is_max);
                 if (beats(cand, best, is_max)) best = {cand.v, r + cand.arg, cand.nan, true};
               });
      part[static_cast<size_t>(blk * p.n_out + o)] = best;
    }
  });
  for (int64_t blk = 1; blk < nb; ++blk)
    for (int64_t o = 0; o < p.n_out; ++o)
      if (beats(part[static_cast<size_t>(blk * p.n_out + o)], part[static_cast<size_t>(o)], is_max))
        part[static_cast<size_t>(o)] = part[static_cast<size_t>(blk * p.n_out + o)];
  part.resize(static_cast<size_t>(p.n_out));
  return part;
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, Tensor& out, Tensor* index) {
  const Plan p = make_plan(x.shape(), axes);
  const float* px = x.data<float>();
  float* po = out.data<float>();
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::mean: {
      const std::vector<double> s = sum_reduce(px, p, nullptr, Identity{});
      // 1/0 = inf makes the mean of an empty slice 0 * inf = NaN, as in PyTorch.
      const double scale = op == ReduceOp::mean ? 1.0 / static_cast<double>(p.n_red) : 1.0;
      for (int64_t o = 0; o < p.n_out; ++o) po[o] = static_cast<float>(s[o] * scale);
      return;
    }
    case ReduceOp::max:
    case ReduceOp::min: {
      const std::vector<Best> b = extreme_reduce(px, p, op == ReduceOp::max);
      int64_t* pi = index && index->defined() ? index->data<int64_t>() : nullptr;
      for (int64_t o = 0; o < p.n_out; ++o) {
        po[o] = b[o].v;
        if (pi) pi[o] = b[o].arg;
      }
      return;
    }
    case ReduceOp::logsumexp: {
      // Shift by the slice maximum so exp never overflows; an infinite maximum (all -inf,
      // or a +inf present) is not subtracted, giving -inf and +inf as in PyTorch.
      const std::vector<Best> m = extreme_reduce(px, p, true);
      std::vector<double> center(static_cast<size_t>(p.n_out));
      for (int64_t o = 0; o < p.n_out; ++o) center[o] = std::isfinite(m[o].v) ? m[o].v : 0.0;
      const std::vector<double> s = sum_reduce(px, p, center.data(), ShiftedExp{});
      for (int64_t o = 0; o < p.n_out; ++o) po[o] = static_cast<float>(std::log(s[o]) + center[o]);
      return;
    }
  }
}

void var(const Tensor& x, const std::vector<int64_t>& axes, int64_t correction, Tensor& out, Tensor* mean) {
  const Plan p = make_plan(x.shape(), axes);
  const float* px = x.data<float>();
  std::vector<double> mu = sum_reduce(px, p, nullptr, Identity{});
  for (double& m : mu) m /= static_cast<double>(p.n_red);
  const std::vector<double> m2 = sum_reduce(px, p, mu.data(), SquaredDeviation{});
  // As torch.var: the divisor is clamped at 0, so too few elements give inf or NaN.
  const double div = static_cast<double>(std::max<int64_t>(0, p.n_red - correction));
  float* po = out.data<float>();
  float* pm = mean && mean->defined() ? mean->data<float>() : nullptr;
  for (int64_t o = 0; o < p.n_out; ++o) {
    po[o] = static_cast<float>(m2[o] / div);
    if (pm) pm[o] = static_cast<float>(mu[o]);
  }
}

void reduce_scatter(const Tensor& dy, const Tensor& index, const std::vector<int64_t>& axes, Tensor& dx) {
  const Plan p = make_plan(dx.shape(), axes);
  const float* pg = dy.data<float>();
  const int64_t* pi = index.data<int64_t>();
  float* pd = dx.data<float>();
  std::fill(pd, pd + dx.numel(), 0.0f);
  parallel_for(p.n_out, 4096, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o)
      pd[offset_of(o, p.keep_dims, p.keep_strides) + offset_of(pi[o], p.red_dims, p.red_strides)] = pg[o];
  });
}

}  // namespace lowbit::cpu
