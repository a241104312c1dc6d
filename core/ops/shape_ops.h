// Shape ops: views (unsqueeze, squeeze), copies that move data (transpose, permute,
// concat, stack, narrow, slice), indexing (index_select, gather, one_hot) and expand.
#pragma once

#include <vector>

#include "../tensor.h"

namespace lowbit {

// Broadcasts x to `shape` (numpy rules), materialised. dx = sum_to(dy, x.shape).
Tensor expand(const Tensor& x, const Shape& shape);
inline Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }

// Views (no copy).
Tensor unsqueeze(const Tensor& x, int64_t axis);
Tensor squeeze(const Tensor& x, int64_t axis);

Tensor transpose(const Tensor& x, int64_t axis0, int64_t axis1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& perm);
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
Tensor stack(const std::vector<Tensor>& xs, int64_t axis);
// Elements [start, start + length) of `axis`.
Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length);
// Python-style x[start:end:step] along `axis` (negative start/end count from the end; step > 0).
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step = 1);
// Entries of x at the 1-D (i64 or i32) `index` along axis; indices may repeat (gradients add).
Tensor index_select(const Tensor& x, int64_t axis, const Tensor& index);
// torch.gather: out[i][j][k] = x[index[i][j][k]][j][k] for axis 0, and so on; index has x's rank.
Tensor gather(const Tensor& x, int64_t axis, const Tensor& index);
// f32 [..., num_classes] with 1 at each label (labels i64/i32, each in [0, num_classes)).
Tensor one_hot(const Tensor& labels, int64_t num_classes);

}  // namespace lowbit
