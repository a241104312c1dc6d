// Thread pool, caching allocator and determinism of whole computations.
#include <catch2/catch.hpp>

#include <atomic>
#include <vector>

#include "lowbit.h"

using namespace lowbit;

TEST_CASE("runtime: set_num_threads sizes the pool") {
  int saved = get_num_threads();
  set_num_threads(1);
  REQUIRE(get_num_threads() == 1);
  set_num_threads(2);
  REQUIRE(get_num_threads() == 2);
  set_num_threads(saved);
}

TEST_CASE("runtime: parallel_for covers the range exactly once and rethrows") {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int64_t n : {0, 1, 7, 1000, 100001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      parallel_for(n, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      int64_t wrong = 0;
      for (auto& h : hits) wrong += h.load() != 1;
      REQUIRE(wrong == 0);
    }
    REQUIRE_THROWS_AS(parallel_for(1000, 1, [](int64_t, int64_t e) {
                        if (e == 1000) throw Error("boom", "test");
                      }),
                      Error);
  }
  set_num_threads(2);
}

TEST_CASE("runtime: the caching allocator reuses freed blocks and tracks the peak") {
  Allocator& a = allocator_for(Device::cpu());
  { Tensor warm = Tensor::empty({123456}); }
  auto before = a.stats();
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty({123456});
    REQUIRE(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  }
  auto after = a.stats();
  REQUIRE(after.os_allocations == before.os_allocations);
  a.reset_peak();
  size_t base = a.stats().allocated_bytes;
  {
    Tensor big = Tensor::empty({1 << 20});
    REQUIRE(a.stats().peak_allocated_bytes >= base + (size_t{4} << 20));
  }
  REQUIRE(a.stats().allocated_bytes == base);
  a.empty_cache();
  REQUIRE(a.stats().cached_bytes == 0);
}

namespace {
// A small computation touching random init, broadcasting, reductions and backward.
std::vector<float> run_once(uint64_t seed) {
  Generator g(seed);
  Tensor x = Tensor::randn({64, 300}, g);
  Tensor w = Tensor::randn({300}, g).set_requires_grad(true);
  Tensor y = tanh(x * w + 0.1);
  Tensor loss = mean(sum(y * y, {1}));
  loss.backward();
  std::vector<float> out = w.grad().to_vector<float>();
  out.push_back(static_cast<float>(loss.item()));
  return out;
}
}  // namespace

TEST_CASE("runtime: same seed and thread count give bit-identical results") {
  set_num_threads(2);
  REQUIRE(run_once(3) == run_once(3));
  REQUIRE(run_once(3) != run_once(4));
}

TEST_CASE("runtime: results agree across thread counts") {
  set_num_threads(1);
  std::vector<float> a = run_once(9);
  set_num_threads(2);
  std::vector<float> b = run_once(9);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == Approx(b[i]).epsilon(1e-5).margin(1e-6));
}
