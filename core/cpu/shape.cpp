// CPU shape-op kernels: broadcast, permute (tiled), concat and slices (memcpy of runs),
// index_select / gather and their scatter-add adjoints, one_hot.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "../kernels/dispatch_width.h"
#include "../kernels/shape.h"
#include "../parallel.h"
#include "broadcast.h"

namespace lowbit::cpu {
namespace {

constexpr int64_t kGrainBytes = 1 << 16;  // below this much copying a thread is not worth waking

// x viewed as [outer, x.shape[axis], inner].
struct Split {
  int64_t outer = 1, n = 1, inner = 1;
};
Split split_at(const Shape& s, int64_t axis) {
  Split p;
  for (int64_t i = 0; i < axis; ++i) p.outer *= s[i];
  p.n = s[axis];
  for (size_t i = static_cast<size_t>(axis) + 1; i < s.size(); ++i) p.inner *= s[i];
  return p;
}

// Copies `bytes` from src to dst; the constant sizes let one-element copies inline.
inline void copy_run(char* dst, const char* src, int64_t bytes) {
  switch (bytes) {
    case 1: std::memcpy(dst, src, 1); break;
    case 4: std::memcpy(dst, src, 4); break;
    case 8: std::memcpy(dst, src, 8); break;
    default: std::memcpy(dst, src, static_cast<size_t>(bytes));
  }
}

// rows x cols runs of `bytes` each: run (r, c) goes from src + r*s_row + c*s_col to
// dst + r*d_row + c*d_col. Long runs are cut into pieces so one big copy still spreads
// over the threads.
void copy_runs(char* dst, int64_t d_row, int64_t d_col, const char* src, int64_t s_row, int64_t s_col, int64_t rows,
               int64_t cols, int64_t bytes) {
  if (rows <= 0 || cols <= 0 || bytes <= 0) return;
  constexpr int64_t kPiece = 1 << 18;
  const int64_t pieces = (bytes + kPiece - 1) / kPiece;
  const int64_t tasks = rows * cols * pieces;
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / std::min(bytes, kPiece));
  parallel_for(tasks, grain, [&](int64_t b, int64_t e) {
    // Decompose the first task once, then step (piece, c, r) like an odometer.
    int64_t p = b % pieces, c = (b / pieces) % cols, r = b / pieces / cols;
    for (int64_t t = b; t < e; ++t) {
      const int64_t off = p * kPiece;
      copy_run(dst + r * d_row + c * d_col + off, src + r * s_row + c * s_col + off, std::min(kPiece, bytes - off));
      if (++p == pieces) {
        p = 0;
        if (++c == cols) {
          c = 0;
          ++r;
        }
      }
    }
  });
}

void zero_fill(void* p, int64_t bytes) {
  char* c = static_cast<char*>(p);
  constexpr int64_t kPiece = 1 << 18;
  parallel_for((bytes + kPiece - 1) / kPiece, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) std::memset(c + t * kPiece, 0, static_cast<size_t>(std::min(kPiece, bytes - t * kPiece)));
  });
}

using kernels::by_width;
using kernels::with_index;

// Position of the first index outside [0, bound) in flat order, or -1. Chunks scan in
// parallel and the smallest hit wins, so the answer does not depend on the thread count.
template <class I>
int64_t first_out_of_range(const I* p, int64_t n, int64_t bound) {
  std::atomic<int64_t> first{n};
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (p[i] < 0 || static_cast<int64_t>(p[i]) >= bound) {
        int64_t cur = first.load();
        while (i < cur && !first.compare_exchange_weak(cur, i)) {
        }
        return;
      }
    }
  });
  return first.load() < n ? first.load() : -1;
}

template <class I>
void check_indices(const char* op, const I* p, int64_t n, int64_t bound, const char* what, const Tensor& x,
                   int64_t axis) {
  int64_t bad = first_out_of_range(p, n, bound);
  LOWBIT_CHECK(bad < 0, op, what, " ", static_cast<int64_t>(bad < 0 ? 0 : p[bad]), " (at position ", bad,
               ") is out of range [0, ", bound, ") for axis ", axis, " of ", shape_str(x.shape()));
}

// Permutation as output dims with input strides (outermost first), size-1 axes dropped and
// output-adjacent axes merged where they are also adjacent and in order in the input.
void coalesce(const Shape& xs, const std::vector<int64_t>& perm, Shape& dims, Shape& in_strides) {
  Shape st = contiguous_strides(xs);
  for (int64_t a : perm) {
    const int64_t d = xs[a], s = st[a];
    if (d == 1) continue;
    if (!dims.empty() && in_strides.back() == s * d) {
      dims.back() *= d;
      in_strides.back() = s;
    } else {
      dims.push_back(d);
      in_strides.push_back(s);
    }
  }
}

// Offset of a flat position over `dims` (outermost first) under `strides`.
int64_t offset_of(int64_t flat, const Shape& dims, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = dims.size(); d-- > 0;) {
    off += (flat % dims[d]) * strides[d];
    flat /= dims[d];
  }
  return off;
}

// Innermost output axis also innermost in x: copy whole runs, stepping an odometer over the rest.
void permute_runs(const char* px, char* po, int64_t es, const Shape& dims, const Shape& ist) {
  const size_t k = dims.size();
  const int64_t inner = dims[k - 1];
  const Shape od(dims.begin(), dims.end() - 1), os(ist.begin(), ist.end() - 1);
  const int64_t runs = numel(od);
  parallel_for(runs, std::max<int64_t>(1, kGrainBytes / (inner * es)), [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(od.size());
    int64_t r = b;
    for (size_t d = od.size(); d-- > 0;) {
      idx[d] = r % od[d];
      r /= od[d];
    }
    int64_t off = 0;
    for (size_t d = 0; d < od.size(); ++d) off += idx[d] * os[d];
    for (int64_t run = b; run < e; ++run) {
      copy_run(po + run * inner * es, px + off * es, inner * es);
      for (size_t d = od.size(); d-- > 0;) {
        off += os[d];
        if (++idx[d] < od[d]) break;
        off -= os[d] * od[d];
        idx[d] = 0;
      }
    }
  });
}

// Innermost output axis strided in x: transpose square tiles between it and axis q (the one
// contiguous in x), so both the reads and the writes of a tile stay within a few cache lines.
template <class E>
void permute_tiled(const E* px, E* po, const Shape& dims, const Shape& ist, size_t q) {
  constexpr int64_t T = sizeof(E) == 1 ? 64 : 32;  // a tile row spans a few cache lines
  const size_t k = dims.size();
  const Shape ost = contiguous_strides(dims);
  const int64_t na = dims[q], nb = dims[k - 1];
  const int64_t oa = ost[q], ib = ist[k - 1];
  Shape bd, bi, bo;  // the other axes: dims, input strides, output strides
  for (size_t d = 0; d + 1 < k; ++d)
    if (d != q) {
      bd.push_back(dims[d]);
      bi.push_back(ist[d]);
      bo.push_back(ost[d]);
    }
  const int64_t ta = (na + T - 1) / T, tb = (nb + T - 1) / T;
  const int64_t tasks = numel(bd) * ta * tb;
  parallel_for(tasks, std::max<int64_t>(1, kGrainBytes / static_cast<int64_t>(T * T * sizeof(E))),
               [&](int64_t b, int64_t e) {
                 for (int64_t t = b; t < e; ++t) {
                   const int64_t batch = t / (ta * tb), tile = t % (ta * tb);
                   const int64_t a0 = (tile / tb) * T, b0 = (tile % tb) * T;
                   const int64_t a1 = std::min(na, a0 + T), b1 = std::min(nb, b0 + T);
                   const E* src = px + offset_of(batch, bd, bi);
                   E* dst = po + offset_of(batch, bd, bo);
                   for (int64_t a = a0; a < a1; ++a)
                     for (int64_t j = b0; j < b1; ++j) dst[a * oa + j] = src[a + j * ib];
                 }
               });
}

}  // namespace

void expand(const Tensor& x, Tensor& out) {
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  const int64_t es = static_cast<int64_t>(dtype_size(x.dtype()));
  auto plan = make_plan<1>(out.shape(), {&x.shape()});
  for_each_run(plan, 1 << 15, [&](int64_t o, const std::array<int64_t, 1>& off, int64_t n,
                                  const std::array<int64_t, 1>& st) {
    if (st[0] == 1) {
      std::memcpy(po + o * es, px + off[0] * es, static_cast<size_t>(n * es));
    } else {
      for (int64_t i = 0; i < n; ++i) std::memcpy(po + (o + i) * es, px + (off[0] + i * st[0]) * es, es);
    }
  });
}

void permute(const Tensor& x, const std::vector<int64_t>& perm, Tensor& out) {
  if (out.numel() == 0) return;
  const int64_t es = static_cast<int64_t>(dtype_size(x.dtype()));
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  Shape dims, ist;
  coalesce(x.shape(), perm, dims, ist);
  if (dims.empty() || ist.back() == 1) {
    if (dims.empty()) dims = ist = {1};
    permute_runs(px, po, es, dims, ist);
    return;
  }
  // x's innermost non-unit axis has stride 1 and survives merging, so q exists.
  const size_t q = static_cast<size_t>(std::find(ist.begin(), ist.end(), 1) - ist.begin());
  by_width(static_cast<size_t>(es), [&](auto tag) {
    using E = decltype(tag);
    permute_tiled(static_cast<const E*>(x.raw_data()), static_cast<E*>(out.raw_data()), dims, ist, q);
  });
}

void concat(const std::vector<Tensor>& xs, int64_t axis, Tensor& out) {
  const int64_t es = static_cast<int64_t>(dtype_size(out.dtype()));
  const Split o = split_at(out.shape(), axis);
  char* po = static_cast<char*>(out.raw_data());
  int64_t at = 0;
  for (const Tensor& x : xs) {
    const int64_t n = x.shape()[axis];
    const int64_t row = n * o.inner * es;
    copy_runs(po + at * o.inner * es, o.n * o.inner * es, 0, static_cast<const char*>(x.raw_data()), row, 0,
              o.outer, 1, row);
    at += n;
  }
}

void slice(const Tensor& x, int64_t axis, int64_t start, int64_t step, Tensor& out) {
  const int64_t es = static_cast<int64_t>(dtype_size(x.dtype()));
  const Split s = split_at(x.shape(), axis);
  const int64_t len = out.shape()[axis];
  const char* px = static_cast<const char*>(x.raw_data()) + start * s.inner * es;
  char* po = static_cast<char*>(out.raw_data());
  if (step == 1)  // one run of len*inner per outer row
    copy_runs(po, len * s.inner * es, 0, px, s.n * s.inner * es, 0, s.outer, 1, len * s.inner * es);
  else
    copy_runs(po, len * s.inner * es, s.inner * es, px, s.n * s.inner * es, step * s.inner * es, s.outer, len,
              s.inner * es);
}

void slice_backward(const Tensor& dy, int64_t axis, int64_t start, int64_t step, Tensor& dx) {
  const int64_t es = static_cast<int64_t>(dtype_size(dx.dtype()));
  const Split s = split_at(dx.shape(), axis);
  const int64_t len = dy.shape()[axis];
  zero_fill(dx.raw_data(), static_cast<int64_t>(dx.nbytes()));
  char* pd = static_cast<char*>(dx.raw_data()) + start * s.inner * es;
  const char* pg = static_cast<const char*>(dy.raw_data());
  if (step == 1)
    copy_runs(pd, s.n * s.inner * es, 0, pg, len * s.inner * es, 0, s.outer, 1, len * s.inner * es);
  else
    copy_runs(pd, s.n * s.inner * es, step * s.inner * es, pg, len * s.inner * es, s.inner * es, s.outer, len,
              s.inner * es);
}

void index_select(const char* op, const Tensor& x, int64_t axis, const Tensor& index, Tensor& out) {
  const int64_t es = static_cast<int64_t>(dtype_size(x.dtype()));
  const Split s = split_at(x.shape(), axis);
  const int64_t m = index.numel();
  const int64_t run = s.inner * es;
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  with_index(index, [&](const auto* idx) {
    check_indices(op, idx, m, s.n, "index", x, axis);
    parallel_for(s.outer * m, std::max<int64_t>(1, kGrainBytes / std::max<int64_t>(run, 1)), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / m, j = t % m;
        copy_run(po + t * run, px + (o * s.n + static_cast<int64_t>(idx[j])) * run, run);
      }
    });
  });
}

void index_add(const Tensor& dy, int64_t axis, const Tensor& index, Tensor& dx) {
  const Split s = split_at(dx.shape(), axis);
  const int64_t m = index.numel();
  const float* pg = dy.data<float>();
  float* pd = dx.data<float>();
  zero_fill(pd, static_cast<int64_t>(dx.nbytes()));
  // Each task owns a column block of one outer slice and adds every j into it in order:
  // no two tasks touch one element, and each element's sum has a fixed order.
  constexpr int64_t kCols = 512;
  const int64_t blocks = (s.inner + kCols - 1) / kCols;
  const int64_t work = std::max<int64_t>(1, m * std::min(kCols, s.inner));
  with_index(index, [&](const auto* idx) {
    parallel_for(s.outer * blocks, std::max<int64_t>(1, (1 << 14) / work), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / blocks, c0 = (t % blocks) * kCols, c1 = std::min(s.inner, c0 + kCols);
        for (int64_t j = 0; j < m; ++j) {
          const float* g = pg + (o * m + j) * s.inner;
          float* d = pd + (o * s.n + static_cast<int64_t>(idx[j])) * s.inner;
          for (int64_t c = c0; c < c1; ++c) d[c] += g[c];
        }
      }
    });
  });
}

namespace {
// Gather geometry: index (and out) viewed as [outer, m, inner]; x offsets of each outer
// and inner position (x may be larger than index on the non-gathered axes).
struct GatherPlan {
  int64_t outer = 1, m = 1, inner = 1, axis_stride = 1;
  Shape outer_dims, outer_strides;  // to map an outer position to its x offset
  std::vector<int64_t> inner_off;   // x offset of each inner position
  bool inner_dense = true;          // inner_off[i] == i (index spans x's trailing axes)
};

GatherPlan gather_plan(const Shape& xs, const Shape& is, int64_t axis) {
  GatherPlan p;
  const Shape xst = contiguous_strides(xs);
  const size_t a = static_cast<size_t>(axis);
  for (size_t d = 0; d < a; ++d) {
    p.outer *= is[d];
    p.outer_dims.push_back(is[d]);
    p.outer_strides.push_back(xst[d]);
  }
  p.m = is[a];
  p.axis_stride = xst[a];
  Shape inner_dims(is.begin() + axis + 1, is.end()), inner_strides(xst.begin() + axis + 1, xst.end());
  p.inner = numel(inner_dims);
  p.inner_off.resize(static_cast<size_t>(p.inner));
  for (int64_t i = 0; i < p.inner; ++i) p.inner_off[static_cast<size_t>(i)] = offset_of(i, inner_dims, inner_strides);
  p.inner_dense = std::equal(inner_dims.begin(), inner_dims.end(), xs.begin() + axis + 1);
  return p;
}
}  // namespace

void gather(const char* op, const Tensor& x, int64_t axis, const Tensor& index, Tensor& out) {
  const GatherPlan p = gather_plan(x.shape(), index.shape(), axis);
  const int64_t n = index.numel();
  with_index(index, [&](const auto* idx) {
    check_indices(op, idx, n, x.shape()[axis], "index", x, axis);
    by_width(dtype_size(x.dtype()), [&](auto tag) {
      using E = decltype(tag);
      const E* px = static_cast<const E*>(x.raw_data());
      E* po = static_cast<E*>(out.raw_data());
      const int64_t* ioff = p.inner_off.data();
      parallel_for(p.outer * p.m, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(p.inner, 1)),
                   [&](int64_t b, int64_t e) {
                     // Rows of `inner` outputs; the x base moves only when the outer position does.
                     int64_t o = b / p.m, j = b % p.m;
                     const E* base = px + offset_of(o, p.outer_dims, p.outer_strides);
                     for (int64_t t = b; t < e; ++t) {
                       const auto* ix = idx + t * p.inner;
                       E* dst = po + t * p.inner;
                       if (p.inner_dense)
                         for (int64_t i = 0; i < p.inner; ++i) dst[i] = base[static_cast<int64_t>(ix[i]) * p.axis_stride + i];
                       else
                         for (int64_t i = 0; i < p.inner; ++i)
                           dst[i] = base[static_cast<int64_t>(ix[i]) * p.axis_stride + ioff[i]];
                       if (++j == p.m) {
                         j = 0;
                         base = px + offset_of(++o, p.outer_dims, p.outer_strides);
                       }
                     }
                   });
    });
  });
}

void scatter_add(const Tensor& dy, int64_t axis, const Tensor& index, Tensor& dx) {
  const GatherPlan p = gather_plan(dx.shape(), index.shape(), axis);
  const float* pg = dy.data<float>();
  float* pd = dx.data<float>();
  zero_fill(pd, static_cast<int64_t>(dx.nbytes()));
  // As in index_add: a task owns (outer, column block) and walks j in order; distinct
  // (outer, inner) positions land on distinct elements of dx, so tasks never collide.
  constexpr int64_t kCols = 512;
  const int64_t blocks = (p.inner + kCols - 1) / kCols;
  const int64_t work = std::max<int64_t>(1, p.m * std::min(kCols, p.inner));
  with_index(index, [&](const auto* idx) {
    parallel_for(p.outer * blocks, std::max<int64_t>(1, (1 << 14) / work), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / blocks, c0 = (t % blocks) * kCols, c1 = std::min(p.inner, c0 + kCols);
        float* base = pd + offset_of(o, p.outer_dims, p.outer_strides);
        for (int64_t j = 0; j < p.m; ++j) {
          const int64_t row = (o * p.m + j) * p.inner;
          if (p.inner_dense)
            for (int64_t c = c0; c < c1; ++c) base[static_cast<int64_t>(idx[row + c]) * p.axis_stride + c] += pg[row + c];
          else
            for (int64_t c = c0; c < c1; ++c)
              base[static_cast<int64_t>(idx[row + c]) * p.axis_stride + p.inner_off[static_cast<size_t>(c)]] += pg[row + c];
        }
      }
    });
  });
}

void one_hot(const char* op, const Tensor& labels, int64_t num_classes, Tensor& out) {
  const int64_t n = labels.numel();
  float* po = out.data<float>();
  with_index(labels, [&](const auto* lab) {
    int64_t bad = first_out_of_range(lab, n, num_classes);
    LOWBIT_CHECK(bad < 0, op, "label ", static_cast<int64_t>(bad < 0 ? 0 : lab[bad]), " (at position ", bad,
                 " of ", shape_str(labels.shape()), ") is out of range [0, ", num_classes, ")");
    parallel_for(n, std::max<int64_t>(1, (1 << 14) / num_classes), [&](int64_t b, int64_t e) {
      std::fill(po + b * num_classes, po + e * num_classes, 0.0f);
      for (int64_t i = b; i < e; ++i) po[i * num_classes + static_cast<int64_t>(lab[i])] = 1.0f;
    });
  });
}

}  // namespace lowbit::cpu
