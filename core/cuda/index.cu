// CUDA shape kernels that move rows or read indices: concat, slice and its adjoint,
// index_select / gather and their scatter-add adjoints, one_hot. Same semantics as
// core/cpu/shape.cpp; the index checks run on the host before any launch (the indices are
// copied back, as the loss kernels do with targets), so a bad index is an Error, never UB.
// The adjoints add in the CPU's order (one thread owns an output column and walks the
// sources in order): deterministic, no atomics, and bit-identical to the CPU.
#include <type_traits>

#include "../kernels/dispatch_width.h"
#include "../kernels/shape.h"
#include "common.cuh"

namespace lowbit::cuda {
namespace {

#define LOWBIT_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{blockDim.x} * gridDim.x)

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

using kernels::by_width;
using kernels::with_index;

// Position of the first index outside [0, bound) in flat order (host copy), or -1; value gets it.
int64_t first_out_of_range(const Tensor& index, int64_t bound, int64_t& value) {
  const Tensor h = index.to(Device::cpu());
  const int64_t n = h.numel();
  auto scan = [&](const auto* p) -> int64_t {
    for (int64_t i = 0; i < n; ++i)
      if (p[i] < 0 || static_cast<int64_t>(p[i]) >= bound) {
        value = static_cast<int64_t>(p[i]);
        return i;
      }
    return -1;
  };
  if (h.dtype() == DType::i32) return scan(h.data<int32_t>());
  return scan(h.data<int64_t>());
}

// The CPU kernels' message (core/cpu/shape.cpp), word for word.
void check_indices(const char* op, const Tensor& index, int64_t bound, const Tensor& x, int64_t axis) {
  int64_t value = 0;
  const int64_t bad = first_out_of_range(index, bound, value);
  LOWBIT_CHECK(bad < 0, op, "index", " ", value, " (at position ", bad, ") is out of range [0, ", bound,
               ") for axis ", axis, " of ", shape_str(x.shape()));
}

void zero_device(Tensor& t) {
  if (t.nbytes() == 0) return;
  LOWBIT_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, t.nbytes(), stream(t.device().index)));
}

// ---- kernels ----

// rows x cols runs of `run` elements: run (r, c) goes from src + r*s_row + c*s_col to
// dst + r*d_row + c*d_col (all in elements); n = rows * cols * run.
template <class E>
__global__ void copy_runs_kernel(E* dst, int64_t d_row, int64_t d_col, const E* src, int64_t s_row, int64_t s_col,
                                 int64_t cols, int64_t run, int64_t n) {
  LOWBIT_GRID_LOOP(i, n) {
    const int64_t k = i % run, t = i / run;
    const int64_t c = t % cols, r = t / cols;
    dst[r * d_row + c * d_col + k] = src[r * s_row + c * s_col + k];
  }
}

// out [outer, m, inner] = x [outer, n_axis, inner] at rows idx[j].
template <class E, class I>
__global__ void index_select_kernel(const E* x, const I* idx, E* out, int64_t m, int64_t n_axis, int64_t inner,
                                    int64_t n) {
  LOWBIT_GRID_LOOP(i, n) {
    const int64_t c = i % inner, t = i / inner;
    const int64_t j = t % m, o = t / m;
    out[i] = x[(o * n_axis + static_cast<int64_t>(idx[j])) * inner + c];
  }
}

// One thread per column (o, c) of dx: adds dy's rows j = 0..m-1 in order, as the CPU does.
template <class I>
__global__ void index_add_kernel(const float* dy, const I* idx, float* dx, int64_t m, int64_t n_axis, int64_t inner,
                                 int64_t columns) {
  LOWBIT_GRID_LOOP(t, columns) {
    const int64_t c = t % inner, o = t / inner;
    const float* g = dy + o * m * inner + c;
    float* d = dx + o * n_axis * inner + c;
    for (int64_t j = 0; j < m; ++j) d[static_cast<int64_t>(idx[j]) * inner] += g[j * inner];
  }
}

// Index positions (index's shape) to x offsets: every axis but `axis` walks x's strides.
struct GatherGeom {
  int nd = 0, axis = 0;
  int64_t dims[kMaxDims] = {};      // index shape
  int64_t xstrides[kMaxDims] = {};  // x's contiguous strides
};

__device__ __forceinline__ int64_t offset_off_axis(const GatherGeom& g, int64_t p) {
  int64_t off = 0;
  for (int d = g.nd - 1; d >= 0; --d) {
    const int64_t coord = p % g.dims[d];
    p /= g.dims[d];
    if (d != g.axis) off += coord * g.xstrides[d];
  }
  return off;
}

template <class E, class I>
__global__ void gather_kernel(const E* x, const I* idx, E* out, GatherGeom geom, int64_t n) {
  const int64_t axis_stride = geom.xstrides[geom.axis];
  LOWBIT_GRID_LOOP(p, n) out[p] = x[offset_off_axis(geom, p) + static_cast<int64_t>(idx[p]) * axis_stride];
}

// One thread per (outer, inner) position of the index: walks the gathered axis in order, so each
// element of dx receives its additions in the CPU's order (positions never share a dx element).
template <class I>
__global__ void scatter_add_kernel(const float* dy, const I* idx, float* dx, GatherGeom geom, int64_t m,
                                   int64_t inner, int64_t columns) {
  const int64_t axis_stride = geom.xstrides[geom.axis];
  LOWBIT_GRID_LOOP(t, columns) {
    const int64_t c = t % inner, o = t / inner;
    const int64_t p0 = o * m * inner + c;
    float* base = dx + offset_off_axis(geom, p0);
    for (int64_t j = 0; j < m; ++j) {
      const int64_t p = p0 + j * inner;
      base[static_cast<int64_t>(idx[p]) * axis_stride] += dy[p];
    }
  }
}

template <class I>
__global__ void one_hot_kernel(const I* labels, float* out, int64_t classes, int64_t n) {
  LOWBIT_GRID_LOOP(i, n) {
    const int64_t k = i % classes, r = i / classes;
    out[i] = static_cast<int64_t>(labels[r]) == k ? 1.0f : 0.0f;
  }
}

// ---- launchers ----

void copy_runs(void* dst, int64_t d_off, int64_t d_row, int64_t d_col, const void* src, int64_t s_off, int64_t s_row,
               int64_t s_col, int64_t rows, int64_t cols, int64_t run, size_t es, int dev) {
  const int64_t n = rows * cols * run;
  if (n <= 0) return;
  by_width(es, [&](auto tag) {
    using E = decltype(tag);
    copy_runs_kernel<E><<<blocks_for(n), kThreads, 0, stream(dev)>>>(static_cast<E*>(dst) + d_off, d_row, d_col,
                                                                      static_cast<const E*>(src) + s_off, s_row,
                                                                      s_col, cols, run, n);
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

GatherGeom gather_geom(const char* op, const Shape& xs, const Shape& is, int64_t axis) {
  LOWBIT_CHECK(is.size() <= static_cast<size_t>(kMaxDims), op, "tensors of more than ", kMaxDims,
               " dimensions are not supported on CUDA, got ", shape_str(is));
  GatherGeom g;
  g.nd = static_cast<int>(is.size());
  g.axis = static_cast<int>(axis);
  const Shape st = contiguous_strides(xs);
  for (size_t d = 0; d < is.size(); ++d) {
    g.dims[d] = is[d];
    g.xstrides[d] = st[d];
  }
  return g;
}

}  // namespace

void concat(const std::vector<Tensor>& xs, int64_t axis, Tensor& out) {
  const size_t es = dtype_size(out.dtype());
  const Split o = split_at(out.shape(), axis);
  const int dev = out.device().index;
  DeviceGuard g(dev);
  int64_t at = 0;
  for (const Tensor& x : xs) {
    const int64_t n = x.shape()[axis];
    // One run of n*inner per outer row, landing at row offset `at` of out's axis.
    copy_runs(out.raw_data(), at * o.inner, o.n * o.inner, 0, x.raw_data(), 0, n * o.inner, 0, o.outer, 1,
              n * o.inner, es, dev);
    at += n;
  }
}

void slice(const Tensor& x, int64_t axis, int64_t start, int64_t step, Tensor& out) {
  const Split s = split_at(x.shape(), axis);
  const int64_t len = out.shape()[axis];
  const int dev = out.device().index;
  DeviceGuard g(dev);
  copy_runs(out.raw_data(), 0, len * s.inner, s.inner, x.raw_data(), start * s.inner, s.n * s.inner, step * s.inner,
            s.outer, len, s.inner, dtype_size(x.dtype()), dev);
}

void slice_backward(const Tensor& dy, int64_t axis, int64_t start, int64_t step, Tensor& dx) {
  const Split s = split_at(dx.shape(), axis);
  const int64_t len = dy.shape()[axis];
  const int dev = dx.device().index;
  DeviceGuard g(dev);
  zero_device(dx);
  copy_runs(dx.raw_data(), start * s.inner, s.n * s.inner, step * s.inner, dy.raw_data(), 0, len * s.inner, s.inner,
            s.outer, len, s.inner, dtype_size(dx.dtype()), dev);
}

void index_select(const char* op, const Tensor& x, int64_t axis, const Tensor& index, Tensor& out) {
  const Split s = split_at(x.shape(), axis);
  const int64_t m = index.numel();
  const int dev = out.device().index;
  DeviceGuard g(dev);
  check_indices(op, index, s.n, x, axis);
  const int64_t n = out.numel();
  if (n == 0) return;
  with_index(index, [&](const auto* idx) {
    using I = std::remove_const_t<std::remove_pointer_t<decltype(idx)>>;
    by_width(dtype_size(x.dtype()), [&](auto tag) {
      using E = decltype(tag);
      index_select_kernel<E, I><<<blocks_for(n), kThreads, 0, stream(dev)>>>(
          static_cast<const E*>(x.raw_data()), idx, static_cast<E*>(out.raw_data()), m, s.n, s.inner, n);
    });
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void index_add(const Tensor& dy, int64_t axis, const Tensor& index, Tensor& dx) {
  const Split s = split_at(dx.shape(), axis);
  const int64_t m = index.numel();
  const int dev = dx.device().index;
  DeviceGuard g(dev);
  zero_device(dx);
  const int64_t columns = s.outer * s.inner;
  if (columns == 0 || m == 0) return;
  with_index(index, [&](const auto* idx) {
    using I = std::remove_const_t<std::remove_pointer_t<decltype(idx)>>;
    index_add_kernel<I><<<blocks_for(columns), kThreads, 0, stream(dev)>>>(dy.data<float>(), idx, dx.data<float>(),
                                                                            m, s.n, s.inner, columns);
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void gather(const char* op, const Tensor& x, int64_t axis, const Tensor& index, Tensor& out) {
  const GatherGeom geom = gather_geom(op, x.shape(), index.shape(), axis);
  const int dev = out.device().index;
  DeviceGuard g(dev);
  check_indices(op, index, x.shape()[axis], x, axis);
  const int64_t n = index.numel();
  if (n == 0) return;
  with_index(index, [&](const auto* idx) {
    using I = std::remove_const_t<std::remove_pointer_t<decltype(idx)>>;
    by_width(dtype_size(x.dtype()), [&](auto tag) {
      using E = decltype(tag);
      gather_kernel<E, I><<<blocks_for(n), kThreads, 0, stream(dev)>>>(static_cast<const E*>(x.raw_data()), idx,
                                                                        static_cast<E*>(out.raw_data()), geom, n);
    });
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void scatter_add(const Tensor& dy, int64_t axis, const Tensor& index, Tensor& dx) {
  const GatherGeom geom = gather_geom("scatter_add", dx.shape(), index.shape(), axis);
  const Split s = split_at(index.shape(), axis);
  const int dev = dx.device().index;
  DeviceGuard g(dev);
  zero_device(dx);
  const int64_t columns = s.outer * s.inner;
  if (columns == 0 || s.n == 0) return;
  with_index(index, [&](const auto* idx) {
    using I = std::remove_const_t<std::remove_pointer_t<decltype(idx)>>;
    scatter_add_kernel<I><<<blocks_for(columns), kThreads, 0, stream(dev)>>>(dy.data<float>(), idx, dx.data<float>(),
                                                                              geom, s.n, s.inner, columns);
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void one_hot(const char* op, const Tensor& labels, int64_t num_classes, Tensor& out) {
  const int dev = out.device().index;
  DeviceGuard g(dev);
  int64_t value = 0;
  const int64_t bad = first_out_of_range(labels, num_classes, value);
  LOWBIT_CHECK(bad < 0, op, "label ", value, " (at position ", bad, " of ", shape_str(labels.shape()),
               ") is out of range [0, ", num_classes, ")");
  const int64_t n = out.numel();
  if (n == 0) return;
  with_index(labels, [&](const auto* lab) {
    using I = std::remove_const_t<std::remove_pointer_t<decltype(lab)>>;
    one_hot_kernel<I><<<blocks_for(n), kThreads, 0, stream(dev)>>>(lab, out.data<float>(), num_classes, n);
  });
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace lowbit::cuda
