// Philox known-answer vectors, generator splitting, distributions and reproducibility.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "lowbit.h"

using namespace lowbit;

TEST_CASE("rng: Philox-4x32-10 matches the Random123 known-answer vectors") {
  REQUIRE(philox4x32(0, 0, 0) == PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  REQUIRE(philox4x32(~0ull, ~0ull, ~0ull) == PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  REQUIRE(philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull) ==
          PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("rng: same seed gives the same stream, splits are independent") {
  Generator a(7), b(7), c(8);
  for (int i = 0; i < 10; ++i) REQUIRE(a.next_u32() == b.next_u32());
  REQUIRE(Generator(7).next_u64() != c.next_u64());
  Generator base(7);
  Generator d1 = base.split("dropout"), d2 = base.split("dropout"), init = base.split("init");
  REQUIRE(d1.next_u64() == d2.next_u64());
  REQUIRE(base.split("dropout").next_u64() != init.next_u64());
  // Splitting does not advance the parent.
  REQUIRE(base.offset() == 0);
}

TEST_CASE("rng: state can be saved and restored") {
  Generator g(3);
  g.next_u64();
  g.uniform();
  Generator h;
  h.set_state(g.seed(), g.stream(), g.offset());
  for (int i = 0; i < 5; ++i) REQUIRE(g.next_u32() == h.next_u32());
}

TEST_CASE("rng: uniform, normal and integer draws have the right moments") {
  Generator g(11);
  const int64_t n = 200000;
  Tensor u = Tensor::rand({n}, g, -2, 3);
  double lo = min(u).item(), hi = max(u).item();
  REQUIRE(lo >= -2.0);
  REQUIRE(hi < 3.0);
  REQUIRE(mean(u).item() == Approx(0.5).margin(0.02));
  Tensor z = Tensor::randn({n}, g, 1.0, 2.0);
  double m = mean(z).item();
  double sd = std::sqrt(mean(pow(z - m, 2)).item());
  REQUIRE(m == Approx(1.0).margin(0.02));
  REQUIRE(sd == Approx(2.0).margin(0.02));
  Tensor r = Tensor::randint(-3, 4, {n}, g);
  std::vector<int64_t> v = r.to_vector<int64_t>();
  std::set<int64_t> seen(v.begin(), v.end());
  REQUIRE(seen == std::set<int64_t>{-3, -2, -1, 0, 1, 2, 3});
  REQUIRE_THROWS_AS(Tensor::randint(2, 2, {1}, g), Error);
  for (int i = 0; i < 1000; ++i) REQUIRE(g.below(10) < 10u);
}

TEST_CASE("rng: random tensors do not depend on the thread count") {
  int saved = get_num_threads();
  set_num_threads(1);
  Generator g1(5);
  Tensor a = Tensor::randn({100003}, g1), b = Tensor::rand({70001}, g1);
  set_num_threads(2);
  Generator g2(5);
  Tensor c = Tensor::randn({100003}, g2), d = Tensor::rand({70001}, g2);
  set_num_threads(saved);
  REQUIRE(a.to_vector<float>() == c.to_vector<float>());
  REQUIRE(b.to_vector<float>() == d.to_vector<float>());
}

TEST_CASE("rng: the batched block fill equals one block at a time") {
  const uint64_t key = 0x1234567890abcdefull, hi = 77;
  for (uint64_t first : {0ull, 5ull, 0xfffffff0ull}) {  // the last crosses a 32-bit carry
    std::vector<uint32_t> out(4 * 37);
    philox4x32_fill(key, hi, first, 37, out.data());
    for (int64_t i = 0; i < 37; ++i) {
      PhiloxBlock b = philox4x32(key, hi, first + static_cast<uint64_t>(i));
      for (int j = 0; j < 4; ++j) REQUIRE(out[static_cast<size_t>(4 * i + j)] == b[static_cast<size_t>(j)]);
    }
  }
}
