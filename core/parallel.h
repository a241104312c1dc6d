// The one thread pool, shared by our kernels and the GEMM (core/parallel.cpp says why it is not OpenMP's).
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
// Chunks run on the pool's workers and on the calling thread; a parallel_for inside a chunk
// runs inline as f(0, n). Calls from several threads at once are safe (one of them uses the
// workers, the others run their chunks in order themselves).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

// True inside a parallel_for chunk (on a worker or on the calling thread).
bool in_parallel_region();

}  // namespace lowbit
