// The one thread pool (OpenMP's), shared by our kernels, Eigen and OpenBLAS.
#pragma once

#include <cstdint>
#include <functional>

namespace lowbit {

// Sets the worker count for every kernel, Eigen and BLAS; n <= 0 means all cores.
void set_num_threads(int n);
int get_num_threads();

// Runs f(begin, end) over [0, n) split into at most get_num_threads() contiguous chunks
// of at least `grain` items. The split depends only on n, grain and the thread count,
// so results that combine chunks in order are reproducible.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

}  // namespace lowbit
