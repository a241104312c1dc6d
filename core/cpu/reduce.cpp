// CPU reductions. Accumulation is in double and in a fixed order that does not depend
// on the thread count, so sums are reproducible across thread settings.
#include <cmath>
#include <limits>

#include "../kernels/reduce.h"
#include "../parallel.h"

namespace lowbit::cpu {
namespace {

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

// Visits the reduced sub-space of one output in flat order: f(r, value).
template <class F>
void walk_reduced(const float* base, const Plan& p, F&& f) {
  const size_t nd = p.red_dims.size();
  if (nd == 0) {
    f(0, base[0]);
    return;
  }
  const int64_t inner = p.red_dims[nd - 1], is = p.red_strides[nd - 1];
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t r = 0; r < p.n_red; r += inner) {
    const float* q = base + off;
    for (int64_t i = 0; i < inner; ++i) f(r + i, q[i * is]);
    for (size_t d = nd - 1; d-- > 0;) {
      off += p.red_strides[d];
      if (++idx[d] < p.red_dims[d]) break;
      off -= p.red_strides[d] * p.red_dims[d];
      idx[d] = 0;
    }
  }
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes, Tensor& out, Tensor* index) {
  const Plan p = make_plan(x.shape(), axes);
  const float* px = x.data<float>();
  float* po = out.data<float>();
  int64_t* pi = index && index->defined() ? index->data<int64_t>() : nullptr;
  const bool sum_like = op == ReduceOp::sum || op == ReduceOp::mean;
  const double scale = op == ReduceOp::mean ? 1.0 / static_cast<double>(std::max<int64_t>(p.n_red, 1)) : 1.0;

  // Kept innermost axis contiguous (e.g. a sum over the batch of [N, C]): accumulate
  // whole rows so memory is read in order.
  const bool rows = sum_like && !p.keep_dims.empty() && p.keep_strides.back() == 1 && p.n_red > 1;
  if (rows) {
    const int64_t inner = p.keep_dims.back();
    const int64_t outer = p.n_out / inner;
    std::vector<int64_t> od(p.keep_dims.begin(), p.keep_dims.end() - 1), os(p.keep_strides.begin(), p.keep_strides.end() - 1);
    const int64_t kChunk = 256;
    const int64_t chunks = (inner + kChunk - 1) / kChunk;
    parallel_for(outer * chunks, 1, [&](int64_t b, int64_t e) {
      std::vector<double> acc(kChunk);
      for (int64_t t = b; t < e; ++t) {
        int64_t o = t / chunks, c0 = (t % chunks) * kChunk, n = std::min(kChunk, inner - c0);
        const float* base = px + offset_of(o, od, os) + c0;
        std::fill(acc.begin(), acc.begin() + n, 0.0);
        // One row of n elements per reduced index, added in order.
        for (int64_t r = 0; r < p.n_red; ++r) {
          const float* q = base + offset_of(r, p.red_dims, p.red_strides);
          for (int64_t i = 0; i < n; ++i) acc[i] += q[i];
        }
        for (int64_t i = 0; i < n; ++i) po[o * inner + c0 + i] = static_cast<float>(acc[i] * scale);
      }
    });
    return;
  }

  parallel_for(p.n_out, std::max<int64_t>(1, 4096 / std::max<int64_t>(p.n_red, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const float* base = px + offset_of(o, p.keep_dims, p.keep_strides);
      if (sum_like) {
        double acc = 0;
        walk_reduced(base, p, [&](int64_t, float v) { acc += v; });
        po[o] = static_cast<float>(acc * scale);
      } else {
        const bool is_max = op == ReduceOp::max;
        float best = is_max ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
        int64_t arg = 0;
        bool nan = false;
        walk_reduced(base, p, [&](int64_t r, float v) {
          if (nan) return;
          if (std::isnan(v)) {  // NaN propagates, as in PyTorch
            nan = true;
            best = v;
            arg = r;
          } else if (r == 0 || (is_max ? v > best : v < best)) {
            best = v;
            arg = r;
          }
        });
        po[o] = best;
        if (pi) pi[o] = arg;
      }
    }
  });
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
