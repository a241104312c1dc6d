// Reductions over axes (empty axes = all, negative axes count from the end), with keepdim.
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "../tensor.h"

namespace lowbit {

using Axes = std::vector<int64_t>;

Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// torch.var: sum((x - mean)^2) / (n - correction); correction 1 is the unbiased estimate,
// 0 the population variance. n - correction <= 0 gives inf or NaN, as in PyTorch.
Tensor var(const Tensor& x, const Axes& axes = {}, bool keepdim = false, int64_t correction = 1);
// log(sum(exp(x))) over axes, computed without overflow; the gradient is softmax(x) * dy.
Tensor logsumexp(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// max/min: the gradient goes to the first extreme element of each reduced slice.
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor min(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// Values and i64 indices along one axis.
std::pair<Tensor, Tensor> max_with_indices(const Tensor& x, int64_t axis, bool keepdim = false);
std::pair<Tensor, Tensor> min_with_indices(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t axis, bool keepdim = false);

}  // namespace lowbit
