// The paths added for training-step speed: the thread pool, the split GEMM, the 2x2 max-pool kernel.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "core/kernels/gemm.h"
#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {

class ThreadsGuard {
 public:
  explicit ThreadsGuard(int n) : saved_(get_num_threads()) { set_num_threads(n); }
  ~ThreadsGuard() { set_num_threads(saved_); }

 private:
  int saved_;
};

std::vector<float> randv(size_t n, uint64_t seed) {
  Generator g(seed);
  return Tensor::randn({static_cast<int64_t>(n)}, g).to_vector<float>();
}

// max over the 2x2 windows in tap order; a later tap wins when larger or NaN.
void naive_max_pool_2x2(const Tensor& x, std::vector<float>& y, std::vector<float>& dx, const std::vector<float>& dy) {
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), OH = H / 2, OW = W / 2;
  const std::vector<float> v = x.to_vector<float>();
  y.assign(size_t(planes * OH * OW), 0);
  dx.assign(v.size(), 0);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t best = -1;
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            const int64_t at = p * H * W + (2 * oh + i) * W + 2 * ow + j;
            const float c = v[size_t(at)];
            if (best < 0 || c > v[size_t(best)] || std::isnan(c)) best = at;
          }
        const size_t o = size_t((p * OH + oh) * OW + ow);
        y[o] = v[size_t(best)];
        dx[size_t(best)] += dy[o];
      }
}

}  // namespace

TEST_CASE("perf paths: parallel_for covers every chunk once, nests inline and is safe from several threads") {
  ThreadsGuard threads(2);
  std::atomic<int> nested_inline{0};
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(1000, 1, [&](int64_t b, int64_t e) {
    REQUIRE(in_parallel_region());
    // A nested call runs as one chunk on this thread.
    parallel_for(50, 1, [&](int64_t nb, int64_t ne) { nested_inline += (nb == 0 && ne == 50); });
    for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
  });
  REQUIRE_FALSE(in_parallel_region());
  REQUIRE(nested_inline.load() == 2);
  for (auto& h : hits) REQUIRE(h.load() == 1);

  // Four threads calling at once: one gets the workers, the others run their chunks alone.
  std::vector<std::thread> callers;
  std::vector<int64_t> sums(4, 0);
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&, t] {
      for (int rep = 0; rep < 200; ++rep) {
        std::vector<int64_t> part(2, 0);
        parallel_for(10000, 100, [&](int64_t b, int64_t e) {
          int64_t s = 0;
          for (int64_t i = b; i < e; ++i) s += i;
          part[b == 0 ? 0 : 1] += s;
        });
        sums[size_t(t)] += part[0] + part[1];
      }
    });
  for (auto& c : callers) c.join();
  for (int64_t s : sums) REQUIRE(s == 200 * (int64_t{9999} * 10000 / 2));

  // An exception in a worker's chunk reaches the caller, and the pool keeps working.
  for (int rep = 0; rep < 20; ++rep)
    REQUIRE_THROWS_AS(parallel_for(100, 1,
                                   [](int64_t b, int64_t) {
                                     if (b > 0) throw Error("boom", "test");
                                   }),
                      Error);
  std::atomic<int64_t> total{0};
  parallel_for(100, 1, [&](int64_t b, int64_t e) { total += e - b; });
  REQUIRE(total.load() == 100);
}

TEST_CASE("perf paths: a GEMM split over the pool equals the naive product and repeats bit for bit") {
  ThreadsGuard threads(2);
  cpu::set_gemm_backend("eigen");
  // Large enough to be split: by rows when M >= N, else by columns.
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{203, 150, 100}, {100, 261, 90}, {1000, 17, 300}}) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        std::vector<float> A = randv(size_t((ta ? K : M) * lda), 1), B = randv(size_t((tb ? N : K) * ldb), 2);
        std::vector<float> C0 = randv(size_t(M * ldc), 3);
        for (float beta : {0.0f, 1.0f}) {
          std::vector<float> got = C0, again = C0;
          cpu::sgemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, got.data(), ldc);
          cpu::sgemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, again.data(), ldc);
          REQUIRE(got == again);
          double worst = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double want = beta * C0[size_t(i * ldc + j)];
              for (int64_t k = 0; k < K; ++k)
                want += 0.5 * double(A[size_t(ta ? k * lda + i : i * lda + k)]) *
                        double(B[size_t(tb ? j * ldb + k : k * ldb + j)]);
              worst = std::max(worst, std::abs(want - got[size_t(i * ldc + j)]));
            }
          INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb << " beta=" << beta);
          REQUIRE(worst < 1e-3);
          // The padding between rows of C is never written.
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = N; j < ldc; ++j) REQUIRE(got[size_t(i * ldc + j)] == C0[size_t(i * ldc + j)]);
        }
      }
  }
  cpu::set_gemm_backend("");
}

TEST_CASE("perf paths: the 2x2 max-pool kernel keeps the general rules (first maximum, NaN wins, odd sizes)") {
  for (int threads : {1, 2}) {
    ThreadsGuard guard(threads);
    // Few distinct values make ties common; NaN and -inf are sprinkled in.
    Generator gen(7);
    std::vector<float> v = Tensor::randint(-2, 3, {3 * 4 * 9 * 7}, gen, DType::i32).to_vector<float>();
    const float inf = std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < v.size(); i += 17) v[i] = std::nanf("");
    for (size_t i = 5; i < v.size(); i += 23) v[i] = -inf;
    v[0] = v[1] = v[7] = v[8] = -inf;  // a whole window of -inf still routes its gradient
    Tensor x = Tensor::from_vector(v, {3, 4, 9, 7});
    x.set_requires_grad(true);
    Tensor y = max_pool2d(x, Pool2dOptions::square(2));
    REQUIRE(y.shape() == Shape{3, 4, 4, 3});
    std::vector<float> dy = randv(size_t(y.numel()), 8), want_y, want_dx;
    naive_max_pool_2x2(x, want_y, want_dx, dy);
    std::vector<float> got_y = y.to_vector<float>();
    for (size_t i = 0; i < got_y.size(); ++i) {
      INFO("output " << i << " threads " << threads);
      if (std::isnan(want_y[i]))
        REQUIRE(std::isnan(got_y[i]));
      else
        REQUIRE(got_y[i] == want_y[i]);
    }
    y.backward(Tensor::from_vector(dy, y.shape()));
    REQUIRE(x.grad().to_vector<float>() == want_dx);
  }
  // Values 0.05 apart, so the finite differences never swap a window's maximum.
  const int64_t n = 2 * 3 * 6 * 5;
  std::vector<float> d(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) d[size_t(i)] = 0.05f * static_cast<float>((i * 7919) % n) - 4.0f;
  Tensor xd = Tensor::from_vector(d, {2, 3, 6, 5});
  xd.set_requires_grad(true);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return max_pool2d(in[0], Pool2dOptions::square(2)); }, {xd});
}

TEST_CASE("perf paths: batch_norm_relu equals relu(batch_norm) in values, gradients and running stats") {
  for (bool training : {true, false}) {
    Generator gen(11);
    Tensor x0 = Tensor::randn({4, 3, 5, 6}, gen);
    Tensor dy = Tensor::randn({4, 3, 5, 6}, gen);
    Tensor w0 = Tensor::rand({3}, gen, 0.5, 1.5), b0 = Tensor::randn({3}, gen, 0, 0.3);
    BatchNormOptions o;
    o.training = training;
    auto run = [&](bool fused) {
      Tensor x = x0.clone().set_requires_grad(true), w = w0.clone().set_requires_grad(true),
             b = b0.clone().set_requires_grad(true);
      Tensor rm = Tensor::full({3}, 0.2), rv = Tensor::full({3}, 1.5);
      Tensor y = fused ? batch_norm_relu(x, w, b, rm, rv, o) : relu(batch_norm(x, w, b, rm, rv, o));
      y.backward(dy);
      return std::vector<std::vector<float>>{y.to_vector<float>(),        x.grad().to_vector<float>(),
                                             w.grad().to_vector<float>(), b.grad().to_vector<float>(),
                                             rm.to_vector<float>(),       rv.to_vector<float>()};
    };
    auto fused = run(true), plain = run(false);
    for (size_t k = 0; k < fused.size(); ++k) {
      INFO("training " << training << " output " << k);
      REQUIRE(fused[k].size() == plain[k].size());
      for (size_t i = 0; i < fused[k].size(); ++i) REQUIRE(fused[k][i] == Approx(plain[k][i]).margin(1e-5));
    }
  }
  // Finite differences, on values whose normalised outputs stay away from the ReLU's kink.
  std::vector<float> v;
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < 6; ++i) v.push_back(static_cast<float>((i % 3 + 1) * (i < 3 ? 1 : -1) * (c + 1) + n * 0.25));
  Tensor xg = Tensor::from_vector(v, {2, 2, 2, 3});
  xg.set_requires_grad(true);
  Tensor wg = Tensor::from_vector(std::vector<float>{1.2f, 0.8f}).set_requires_grad(true);
  Tensor bg = Tensor::from_vector(std::vector<float>{0.1f, -0.2f}).set_requires_grad(true);
  BatchNormOptions t;
  t.training = true;
  REQUIRE_GRADCHECK(
      [t](const std::vector<Tensor>& in) { return batch_norm_relu(in[0], in[1], in[2], Tensor(), Tensor(), t); },
      {xg, wg, bg});
}

TEST_CASE("perf paths: Sequential fuses BatchNorm + ReLU without changing results") {
  Generator gen(12);
  auto bn = std::make_shared<BatchNorm2d>(4);
  auto seq = std::make_shared<Sequential>();
  seq->push_back(bn);
  seq->push_back(std::make_shared<ReLU>());
  Tensor x = Tensor::randn({3, 4, 5, 5}, gen);
  Tensor dy = Tensor::randn({3, 4, 5, 5}, gen);
  Tensor xa = x.clone().set_requires_grad(true);
  Tensor ya = seq->forward(xa);
  ya.backward(dy);
  std::vector<float> rm_fused = bn->running_mean().to_vector<float>();
  bn->reset_running_stats();
  Tensor xb = x.clone().set_requires_grad(true);
  Tensor yb = relu(bn->forward(xb));
  yb.backward(dy);
  REQUIRE(ya.grad_fn()->name() == "batch_norm_relu");
  REQUIRE(ya.to_vector<float>() == yb.to_vector<float>());
  REQUIRE(xa.grad().to_vector<float>() == xb.grad().to_vector<float>());
  REQUIRE(rm_fused == bn->running_mean().to_vector<float>());
  REQUIRE(bn->num_batches_tracked().item() == 1);
}
