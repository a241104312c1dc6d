// CPU sgemm: OpenBLAS (OpenMP build) where it runs a kernel as wide as the CPU, else Eigen.
// GCC 12 flags _mm512_undefined_ps() inside its own AVX-512 headers (a false positive,
// GCC PR 105593); the pragma precedes every include so it covers them.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Eigen runs single-threaded; sgemm splits large products over lowbit's pool itself.
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <string>

#include "../error.h"
#include "../kernels/gemm.h"
#include "../parallel.h"

#ifdef LOWBIT_HAVE_BLAS
#include <cblas.h>
#endif

namespace lowbit::cpu {
namespace {

enum class Backend { eigen, blas };

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

#ifdef LOWBIT_HAVE_BLAS
// OpenBLAS picks its kernels when the library loads, honouring OPENBLAS_CORETYPE. A core
// forced narrower than the CPU (e.g. Haswell's AVX2 on an AVX-512 machine) runs at about
// half the machine's peak, below Eigen built with -march=native, so Eigen wins there.
bool blas_core_is_full_width() {
  const std::string core = lower(openblas_get_corename());
  const bool avx512_core = core == "skylakex" || core == "cooperlake" || core == "sapphirerapids";
  return avx512_core || !__builtin_cpu_supports("avx512f");
}
#endif

Backend choose_backend(const char* forced) {
  const std::string f = forced ? lower(forced) : std::string();
  LOWBIT_CHECK(f.empty() || f == "eigen" || f == "blas" || f == "openblas", "gemm backend",
               "unknown GEMM backend '", f, "' (use eigen or blas)");
  if (f == "eigen") return Backend::eigen;
#ifdef LOWBIT_HAVE_BLAS
  if (f == "blas" || f == "openblas" || blas_core_is_full_width()) return Backend::blas;
#else
  LOWBIT_CHECK(f.empty(), "gemm backend", "this build of lowbit has no OpenBLAS, so '", f,
               "' cannot be used (LOWBIT_GEMM or set_gemm_backend)");
#endif
  return Backend::eigen;
}

std::atomic<int> g_backend{-1};  // -1 until first use

Backend backend() {
  int b = g_backend.load(std::memory_order_relaxed);
  if (b < 0) {
    b = static_cast<int>(choose_backend(std::getenv("LOWBIT_GEMM")));
    g_backend.store(b, std::memory_order_relaxed);
  }
  return static_cast<Backend>(b);
}

template <bool TA, bool TB>
void eigen_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                int64_t ldb, float beta, float* C, int64_t ldc) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
  using MMap = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;
  CMap a(A, TA ? K : M, TA ? M : K, Eigen::OuterStride<>(lda));
  CMap b(B, TB ? N : K, TB ? K : N, Eigen::OuterStride<>(ldb));
  MMap c(C, M, N, Eigen::OuterStride<>(ldc));
  auto op_a = [&] {
    if constexpr (TA) return a.transpose();
    else return a;
  }();
  auto op_b = [&] {
    if constexpr (TB) return b.transpose();
    else return b;
  }();
  if (beta == 0.0f) {
    c.noalias() = alpha * op_a * op_b;
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * op_a * op_b;
  }
}

// C = beta * C for the degenerate K == 0 product (beta == 0 writes zeros without reading C).
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

}  // namespace

const char* gemm_backend_name() { return backend() == Backend::blas ? "openblas" : "eigen"; }

void set_gemm_backend(const char* name) {
  g_backend.store(static_cast<int>(choose_backend(name && *name ? name : std::getenv("LOWBIT_GEMM"))),
                  std::memory_order_relaxed);
}

namespace {

void eigen_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (!trans_a && !trans_b) eigen_gemm<false, false>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (!trans_a && trans_b) eigen_gemm<false, true>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (trans_a && !trans_b) eigen_gemm<true, false>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else eigen_gemm<true, true>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Below this many multiply-adds (~15 us on one core) waking a worker costs more than it saves.
constexpr double kParallelWork = double(1 << 20);

// Splits C into one block of rows (or columns, whichever dimension is larger) per thread,
// each a single-threaded Eigen GEMM; blocks are multiples of Eigen's register tile so the
// edges are not all ragged. The split depends only on the sizes and the thread count.
void eigen_sgemm_split(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                       int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const double work = double(M) * double(N) * double(K);
  const int threads = get_num_threads();
  if (threads <= 1 || in_parallel_region() || work < 2 * kParallelWork) {
    eigen_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const bool by_rows = M >= N;
  const int64_t dim = by_rows ? M : N, unit = by_rows ? 48 : 16;
  const int64_t units = (dim + unit - 1) / unit;
  const double work_per_unit = work / double(units);
  const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(kParallelWork / work_per_unit));
  parallel_for(units, grain, [&](int64_t b, int64_t e) {
    const int64_t lo = b * unit, hi = std::min(e * unit, dim);
    if (by_rows) {
      // op(A) rows lo..hi: rows of A, or columns of the stored A^T.
      const float* a = trans_a ? A + lo : A + lo * lda;
      eigen_sgemm(trans_a, trans_b, hi - lo, N, K, alpha, a, lda, B, ldb, beta, C + lo * ldc, ldc);
    } else {
      const float* bb = trans_b ? B + lo * ldb : B + lo;
      eigen_sgemm(trans_a, trans_b, M, hi - lo, K, alpha, A, lda, bb, ldb, beta, C + lo, ldc);
    }
  });
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return scale_c(M, N, beta, C, ldc);
#ifdef LOWBIT_HAVE_BLAS
  // OpenBLAS threads itself (its OpenMP team, sized by set_num_threads) and is only called
  // from outside lowbit's pool: calls from several non-OpenMP threads at once are not safe
  // in every OpenBLAS release. Inside a parallel_for chunk the product runs on Eigen.
  if (backend() == Backend::blas && !in_parallel_region()) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
                static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
    return;
  }
#endif
  eigen_sgemm_split(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_batched(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b,
                   float beta, float* C, int64_t ldc, int64_t stride_c) {
  if (batch <= 0) return;
  auto one = [&](int64_t i) {
    sgemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta, C + i * stride_c,
          ldc);
  };
  // Small products gain nothing from a threaded GEMM: give each thread whole matrices
  // instead (on Eigen inside the chunks, whatever the backend: see sgemm). The choice
  // depends only on the sizes and the thread count, so results are reproducible for a fixed
  // thread count (the GEMMs themselves may round differently across thread counts).
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int threads = get_num_threads();
  if (threads > 1 && batch > 1 && (work < (1 << 21) || batch >= 4 * threads)) {
    parallel_for(batch, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) one(i);
  }
}

}  // namespace lowbit::cpu
