// Shape-op kernels: the interface each backend implements.
// Kernels that read indices check each one against its bound and throw lowbit::Error
// naming `op` and the first offending value (first in flat order, whatever the thread count).
#pragma once

#include <vector>

#include "../tensor.h"

namespace lowbit {

// out (already shaped) = x broadcast to out's shape.
using ExpandKernel = void(const Tensor& x, Tensor& out);
// out[i_0, .., i_k] = x at the index whose axis perm[j] is i_j; out is x.shape permuted. Any dtype.
using PermuteKernel = void(const Tensor& x, const std::vector<int64_t>& perm, Tensor& out);
// out = xs joined along `axis` (xs share out's shape except on axis, and its dtype).
using ConcatKernel = void(const std::vector<Tensor>& xs, int64_t axis, Tensor& out);
// out[.., i, ..] = x[.., start + i * step, ..] on `axis` (step >= 1); out holds the selected count.
using SliceKernel = void(const Tensor& x, int64_t axis, int64_t start, int64_t step, Tensor& out);
// dx (x's shape, zero-filled here) gets dy at [.., start + i * step, ..]: the adjoint of SliceKernel.
using SliceBackwardKernel = void(const Tensor& dy, int64_t axis, int64_t start, int64_t step, Tensor& dx);
// out[.., j, ..] = x[.., index[j], ..] on `axis`; index is 1-D i64 or i32.
using IndexSelectKernel = void(const char* op, const Tensor& x, int64_t axis, const Tensor& index, Tensor& out);
// dx (x's shape, zero-filled here) += dy[.., j, ..] at [.., index[j], ..], adding in j order (f32).
using IndexAddKernel = void(const Tensor& dy, int64_t axis, const Tensor& index, Tensor& dx);
// out = index's shape; out[p] = x[p with its `axis` coordinate replaced by index[p]].
using GatherKernel = void(const char* op, const Tensor& x, int64_t axis, const Tensor& index, Tensor& out);
// dx (zero-filled here) += dy[p] at p with axis coordinate index[p], adding in flat order of p (f32).
using ScatterAddKernel = void(const Tensor& dy, int64_t axis, const Tensor& index, Tensor& dx);
// out (f32, labels.shape + [num_classes]) = 1 at each label, 0 elsewhere.
using OneHotKernel = void(const char* op, const Tensor& labels, int64_t num_classes, Tensor& out);

namespace cpu {
ExpandKernel expand;
PermuteKernel permute;
ConcatKernel concat;
SliceKernel slice;
SliceBackwardKernel slice_backward;
IndexSelectKernel index_select;
IndexAddKernel index_add;
GatherKernel gather;
ScatterAddKernel scatter_add;
OneHotKernel one_hot;
}  // namespace cpu

// Defined in core/cuda/ when lowbit is built with LOWBIT_CUDA.
namespace cuda {
ExpandKernel expand;
PermuteKernel permute;
ConcatKernel concat;
SliceKernel slice;
SliceBackwardKernel slice_backward;
IndexSelectKernel index_select;
IndexAddKernel index_add;
GatherKernel gather;
ScatterAddKernel scatter_add;
OneHotKernel one_hot;
}  // namespace cuda

}  // namespace lowbit
