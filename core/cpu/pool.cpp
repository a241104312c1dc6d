// CPU pooling kernels. Work is split over whole planes, and each plane is walked in a
// fixed order, so results (gradients included) do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../kernels/pool.h"
#include "../parallel.h"

namespace lowbit::cpu {
namespace {

// Taps i in [first, end) of a window starting at `start` (step `dil`) that land in [0, size).
int64_t first_tap(int64_t start, int64_t dil) { return start >= 0 ? 0 : (-start + dil - 1) / dil; }
int64_t end_tap(int64_t start, int64_t kernel, int64_t dil, int64_t size) {
  return size > start ? std::min(kernel, (size - start + dil - 1) / dil) : 0;
}

// [first, end) taps of every window along one axis, computed once per call (the
// divisions would otherwise dominate small windows).
struct TapRange {
  int64_t start, first, end;
};
std::vector<TapRange> tap_table(int64_t out, int64_t stride, int64_t pad, int64_t kernel, int64_t dil, int64_t size) {
  std::vector<TapRange> t(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * stride - pad;
    t[o] = {start, first_tap(start, dil), end_tap(start, kernel, dil, size)};
  }
  return t;
}

// Column tap j of output column ow reads input column ow*stride + offset[j], which is
// inside the input for ow in [lo[j], hi[j]).
struct ColumnTaps {
  std::vector<int64_t> offset, lo, hi;
};
ColumnTaps column_taps(const Pool2dGeometry& g) {
  const size_t k = static_cast<size_t>(g.kernel_w);
  ColumnTaps t{std::vector<int64_t>(k), std::vector<int64_t>(k), std::vector<int64_t>(k)};
  for (size_t j = 0; j < k; ++j) {
    const int64_t off = static_cast<int64_t>(j) * g.dilation_w - g.pad_w;
    t.offset[j] = off;
    t.hi[j] = g.in_w > off ? std::min(g.out_w, (g.in_w - off + g.stride_w - 1) / g.stride_w) : 0;
    t.lo[j] = std::min(t.hi[j], off >= 0 ? 0 : (-off + g.stride_w - 1) / g.stride_w);
  }
  return t;
}

// Planes per task: enough that each task has some tens of thousands of reads.
int64_t plane_grain(int64_t work_per_plane) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(work_per_plane, 1));
}

// torch's average-pool window for one output coordinate: the clipped [lo, hi) and the
// span clipped only to the padded extent (the count_include_pad divisor).
struct AvgWindow {
  int64_t lo, hi, padded;
};
AvgWindow avg_window(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t size) {
  int64_t lo = o * stride - pad;
  int64_t hi = std::min(lo + kernel, size + pad);
  AvgWindow w{lo, hi, hi - lo};
  w.lo = std::max<int64_t>(w.lo, 0);
  w.hi = std::min(w.hi, size);
  return w;
}

// Average pooling walks one output row at a time, tap by tap across the whole row (as
// max pooling does); the divisor of (oh, ow) is the product of a row and a column factor.
struct AvgPlan {
  std::vector<AvgWindow> rows;
  std::vector<float> col_div;  // per output column; times the row's factor gives the divisor
  ColumnTaps cols;
};
AvgPlan avg_plan(const Pool2dGeometry& g, bool count_include_pad) {
  AvgPlan p;
  for (int64_t oh = 0; oh < g.out_h; ++oh) p.rows.push_back(avg_window(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h));
  for (int64_t ow = 0; ow < g.out_w; ++ow) {
    const AvgWindow w = avg_window(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w);
    p.col_div.push_back(static_cast<float>(count_include_pad ? w.padded : w.hi - w.lo));
  }
  p.cols = column_taps(g);
  return p;
}
float row_div(const AvgWindow& w, bool count_include_pad) {
  return static_cast<float>(count_include_pad ? w.padded : w.hi - w.lo);
}

// torch's adaptive bin [floor(o*in/out), ceil((o+1)*in/out)).
int64_t bin_lo(int64_t o, int64_t in, int64_t out) { return o * in / out; }
int64_t bin_hi(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

// The 2x2 / stride 2 windows that lie inside the input (VGG's and LeNet's pooling): the same
// taps in the same order and the same select as the general loop below, unrolled so each
// output is written once (the general loop re-reads and re-writes every output per tap,
// which cost ~10x on these shapes).
bool is_plain_2x2(const Pool2dGeometry& g) {
  return g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0 &&
         g.dilation_h == 1 && g.dilation_w == 1 && 2 * g.out_h <= g.in_h && 2 * g.out_w <= g.in_w;
}

void max_pool2d_2x2(const Pool2dGeometry& g, const float* px, float* py, int32_t* pi) {
  const int64_t in_sz = g.in_h * g.in_w, out_sz = g.out_h * g.out_w, in_w = g.in_w, out_w = g.out_w;
  parallel_for(g.planes, plane_grain(out_sz * 4), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const float* __restrict r0 = px + p * in_sz + 2 * oh * in_w;
        const float* __restrict r1 = r0 + in_w;
        float* __restrict yr = py + p * out_sz + oh * out_w;
        int32_t* __restrict ir = pi + p * out_sz + oh * out_w;
        const int32_t row0 = static_cast<int32_t>(2 * oh * in_w), row1 = static_cast<int32_t>(row0 + in_w);
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int32_t c0 = static_cast<int32_t>(2 * ow);
          float m = r0[2 * ow];
          int32_t i = row0 + c0;
          // A later tap wins when larger or NaN (v != v), as in the general loop.
          const float v1 = r0[2 * ow + 1], v2 = r1[2 * ow], v3 = r1[2 * ow + 1];
          bool t = (v1 > m) | (v1 != v1);
          m = t ? v1 : m;
          i = t ? row0 + c0 + 1 : i;
          t = (v2 > m) | (v2 != v2);
          m = t ? v2 : m;
          i = t ? row1 + c0 : i;
          t = (v3 > m) | (v3 != v3);
          m = t ? v3 : m;
          i = t ? row1 + c0 + 1 : i;
          yr[ow] = m;
          ir[ow] = i;
        }
      }
    }
  });
}

}  // namespace

void max_pool2d(const Pool2dGeometry& g, const Tensor& x, Tensor& y, Tensor& index) {
  const int64_t in_sz = g.in_h * g.in_w, out_sz = g.out_h * g.out_w;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  int32_t* pi = index.data<int32_t>();
  if (is_plain_2x2(g)) return max_pool2d_2x2(g, px, py, pi);
  const auto rows = tap_table(g.out_h, g.stride_h, g.pad_h, g.kernel_h, g.dilation_h, g.in_h);
  const ColumnTaps cols = column_taps(g);
  parallel_for(g.planes, plane_grain(out_sz * g.kernel_h * g.kernel_w), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* xp = px + p * in_sz;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        float* yr = py + p * out_sz + oh * g.out_w;
        int32_t* ir = pi + p * out_sz + oh * g.out_w;
        std::fill(yr, yr + g.out_w, -std::numeric_limits<float>::infinity());
        std::fill(ir, ir + g.out_w, -1);
        // Taps in row-major window order, each updating a whole output row: the first
        // maximum wins, and the select is branch-free (on real data it is a coin flip).
        const auto [h0, i0, i1] = rows[oh];
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t row = (h0 + i * g.dilation_h) * g.in_w;
          for (int64_t j = 0; j < g.kernel_w; ++j) {
            const int64_t off = row + cols.offset[j];
            for (int64_t ow = cols.lo[j]; ow < cols.hi[j]; ++ow) {
              const int64_t at = off + ow * g.stride_w;
              const float v = xp[at];
              // NaN wins, as in PyTorch; the first tap is taken even if it is -inf, so
              // every window that holds an input element routes its gradient somewhere.
              const bool take = (v > yr[ow]) | std::isnan(v) | (ir[ow] < 0);
              yr[ow] = take ? v : yr[ow];
              ir[ow] = take ? static_cast<int32_t>(at) : ir[ow];
            }
          }
        }
      }
    }
  });
}

void max_pool2d_backward(const Pool2dGeometry& g, const Tensor& dy, const Tensor& index, Tensor& dx) {
  const int64_t in_sz = g.in_h * g.in_w, out_sz = g.out_h * g.out_w;
  const float* pg = dy.data<float>();
  const int32_t* pi = index.data<int32_t>();
  float* pd = dx.data<float>();
  parallel_for(g.planes, plane_grain(in_sz + out_sz), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float* dp = pd + p * in_sz;
      const float* gp = pg + p * out_sz;
      const int32_t* ip = pi + p * out_sz;
      std::fill(dp, dp + in_sz, 0.0f);
      for (int64_t o = 0; o < out_sz; ++o)
        if (ip[o] >= 0) dp[ip[o]] += gp[o];
    }
  });
}

void avg_pool2d(const Pool2dGeometry& g, bool count_include_pad, const Tensor& x, Tensor& y) {
  const int64_t in_sz = g.in_h * g.in_w, out_sz = g.out_h * g.out_w;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const AvgPlan plan = avg_plan(g, count_include_pad);
  parallel_for(g.planes, plane_grain(out_sz * g.kernel_h * g.kernel_w), [&](int64_t b, int64_t e) {
    std::vector<float> acc(static_cast<size_t>(g.out_w));
    for (int64_t p = b; p < e; ++p) {
      const float* xp = px + p * in_sz;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const AvgWindow wh = plan.rows[oh];
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t h = wh.lo; h < wh.hi; ++h)
          for (int64_t j = 0; j < g.kernel_w; ++j) {
            const float* xr = xp + h * g.in_w + plan.cols.offset[j];
            for (int64_t ow = plan.cols.lo[j]; ow < plan.cols.hi[j]; ++ow) acc[ow] += xr[ow * g.stride_w];
          }
        float* yr = py + p * out_sz + oh * g.out_w;
        const float rd = row_div(wh, count_include_pad);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const float div = rd * plan.col_div[ow];
          yr[ow] = div > 0 ? acc[ow] / div : 0.0f;
        }
      }
    }
  });
}

void avg_pool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const Tensor& dy, Tensor& dx) {
  const int64_t in_sz = g.in_h * g.in_w, out_sz = g.out_h * g.out_w;
  const float* pg = dy.data<float>();
  float* pd = dx.data<float>();
  const AvgPlan plan = avg_plan(g, count_include_pad);
  parallel_for(g.planes, plane_grain(out_sz * g.kernel_h * g.kernel_w), [&](int64_t b, int64_t e) {
    std::vector<float> share(static_cast<size_t>(g.out_w));
    for (int64_t p = b; p < e; ++p) {
      float* dp = pd + p * in_sz;
      std::fill(dp, dp + in_sz, 0.0f);
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const AvgWindow wh = plan.rows[oh];
        const float* gr = pg + p * out_sz + oh * g.out_w;
        const float rd = row_div(wh, count_include_pad);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const float div = rd * plan.col_div[ow];
          share[ow] = div > 0 ? gr[ow] / div : 0.0f;
        }
        for (int64_t h = wh.lo; h < wh.hi; ++h)
          for (int64_t j = 0; j < g.kernel_w; ++j) {
            float* dr = dp + h * g.in_w + plan.cols.offset[j];
            for (int64_t ow = plan.cols.lo[j]; ow < plan.cols.hi[j]; ++ow) dr[ow * g.stride_w] += share[ow];
          }
      }
    }
  });
}

void adaptive_avg_pool2d(const Pool2dGeometry& g, const Tensor& x, Tensor& y) {
  const int64_t in_sz = g.in_h * g.in_w, out_sz = g.out_h * g.out_w;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  parallel_for(g.planes, plane_grain(in_sz + out_sz), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* xp = px + p * in_sz;
      float* yp = py + p * out_sz;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const int64_t h0 = bin_lo(oh, g.in_h, g.out_h), h1 = bin_hi(oh, g.in_h, g.out_h);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const int64_t w0 = bin_lo(ow, g.in_w, g.out_w), w1 = bin_hi(ow, g.in_w, g.out_w);
          double acc = 0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) acc += xp[h * g.in_w + w];
          yp[oh * g.out_w + ow] = static_cast<float>(acc / static_cast<double>((h1 - h0) * (w1 - w0)));
        }
      }
    }
  });
}

void adaptive_avg_pool2d_backward(const Pool2dGeometry& g, const Tensor& dy, Tensor& dx) {
  const int64_t in_sz = g.in_h * g.in_w, out_sz = g.out_h * g.out_w;
  const float* pg = dy.data<float>();
  float* pd = dx.data<float>();
  parallel_for(g.planes, plane_grain(in_sz + out_sz), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float* dp = pd + p * in_sz;
      const float* gp = pg + p * out_sz;
      std::fill(dp, dp + in_sz, 0.0f);
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const int64_t h0 = bin_lo(oh, g.in_h, g.out_h), h1 = bin_hi(oh, g.in_h, g.out_h);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const int64_t w0 = bin_lo(ow, g.in_w, g.out_w), w1 = bin_hi(ow, g.in_w, g.out_w);
          const float share = gp[oh * g.out_w + ow] / static_cast<float>((h1 - h0) * (w1 - w0));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) dp[h * g.in_w + w] += share;
        }
      }
    }
  });
}

}  // namespace lowbit::cpu
