// Reductions over axes (empty axes = all), with keepdim; softmax family; logsumexp.
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "../tensor.h"

namespace lowbit {

using Axes = std::vector<int64_t>;

Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// max/min: the gradient goes to the first extreme element of each reduced slice.
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
Tensor min(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
// Values and i64 indices along one axis.
std::pair<Tensor, Tensor> max_with_indices(const Tensor& x, int64_t axis, bool keepdim = false);
std::pair<Tensor, Tensor> min_with_indices(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t axis, bool keepdim = false);

}  // namespace lowbit
