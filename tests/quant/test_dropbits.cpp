// DropBits: levels of grid points in both modes and grids, survivor sets, mask statistics
// (QUANTIZERS.md check 7).
#include <catch2/catch.hpp>

#include <vector>

#include "core/parallel.h"
#include "quant/dropbits.h"

using namespace lowbit;

namespace {
using Mode = DropBitsSpec::Mode;
DropBitsSpec spec_of(Mode mode, bool protect, double p = 0.3) {
  DropBitsSpec s;
  s.enabled = true;
  s.mode = mode;
  s.protect_ends = protect;
  s.p = p;
  return s;
}
const uint8_t kDropLevel2 = 2, kDropLevel3 = 4;
}  // namespace

TEST_CASE("dropbits: levels of every code, resolution and range, rq and symmetric grids") {
  // resolution: the l-bit grid is the l-bit code range times 2^(b-l)
  CHECK(code_levels(2, true, GridKind::rq, Mode::resolution) == std::vector<int>{1, 2, 1, 2});  // -2..1
  CHECK(code_levels(3, true, GridKind::rq, Mode::resolution) == std::vector<int>{1, 3, 2, 3, 1, 3, 2, 3});
  CHECK(code_levels(3, true, GridKind::symmetric, Mode::resolution) == std::vector<int>{3, 2, 3, 1, 3, 2, 3});
  CHECK(code_levels(2, false, GridKind::rq, Mode::resolution) == std::vector<int>{1, 2, 1, 2});  // 0..3
  // range: the l-bit grid is the l-bit code range (step kept)
  CHECK(code_levels(3, true, GridKind::rq, Mode::range) == std::vector<int>{3, 3, 2, 1, 1, 2, 3, 3});
  CHECK(code_levels(3, true, GridKind::symmetric, Mode::range) == std::vector<int>{3, 3, 2, 1, 2, 3, 3});
  CHECK(code_levels(2, false, GridKind::rq, Mode::range) == std::vector<int>{1, 1, 2, 2});
  CHECK(level_drop_probability(3, 3, 0.3) == Approx(0.3));
  CHECK(level_drop_probability(2, 3, 0.3) == Approx(0.09));
  CHECK(level_drop_probability(1, 3, 0.3) == 0.0);
}

TEST_CASE("dropbits: dropping one bit keeps 2^(b-1) points, step 2, and 0 (check 7)") {
  for (int b = 2; b <= 8; ++b) {
    DropBitsSampler d(spec_of(Mode::resolution, false), b, true, GridKind::rq);
    const uint8_t finest = static_cast<uint8_t>(1u << (b - 1));
    std::vector<int64_t> s = d.survivors(finest);
    INFO("bits " << b);
    REQUIRE(static_cast<int64_t>(s.size()) == (int64_t{1} << (b - 1)));
    for (size_t i = 1; i < s.size(); ++i) CHECK(s[i] - s[i - 1] == 2);
    CHECK(std::find(s.begin(), s.end(), 0) != s.end());
    CHECK(d.survivors(0).size() == size_t{1} << b);  // nothing dropped
  }
}

TEST_CASE("dropbits: survivor sets at 2 and 3 bits in both modes and grids") {
  using V = std::vector<int64_t>;
  // literal nested grids (protect_ends false): the 2-bit rq grid drops to {-2, 0}
  CHECK(DropBitsSampler(spec_of(Mode::resolution, false), 2, true, GridKind::rq).survivors(kDropLevel2) == V{-2, 0});
  // protected ends: the highest point stays, so the positive side survives
  CHECK(DropBitsSampler(spec_of(Mode::resolution, true), 2, true, GridKind::rq).survivors(kDropLevel2) == V{-2, 0, 1});
  CHECK(DropBitsSampler(spec_of(Mode::resolution, false), 3, true, GridKind::rq).survivors(kDropLevel3) ==
        V{-4, -2, 0, 2});
  CHECK(DropBitsSampler(spec_of(Mode::resolution, false), 3, true, GridKind::rq).survivors(kDropLevel3 | kDropLevel2) ==
        V{-4, 0});
  CHECK(DropBitsSampler(spec_of(Mode::resolution, true), 3, true, GridKind::rq).survivors(kDropLevel3 | kDropLevel2) ==
        V{-4, 0, 3});
  CHECK(DropBitsSampler(spec_of(Mode::resolution, false), 3, true, GridKind::symmetric).survivors(kDropLevel3) ==
        V{-2, 0, 2});
  CHECK(DropBitsSampler(spec_of(Mode::resolution, true), 3, true, GridKind::symmetric).survivors(kDropLevel3) ==
        V{-3, -2, 0, 2, 3});
  CHECK(DropBitsSampler(spec_of(Mode::resolution, false), 2, true, GridKind::symmetric).survivors(kDropLevel2) == V{0});
  // range mode: outer points go first, the step stays
  CHECK(DropBitsSampler(spec_of(Mode::range, false), 3, true, GridKind::rq).survivors(kDropLevel3) == V{-2, -1, 0, 1});
  CHECK(DropBitsSampler(spec_of(Mode::range, false), 3, true, GridKind::rq).survivors(kDropLevel3 | kDropLevel2) ==
        V{-1, 0});
  CHECK(DropBitsSampler(spec_of(Mode::range, true), 3, true, GridKind::rq).survivors(kDropLevel3) ==
        V{-4, -2, -1, 0, 1, 3});
  CHECK(DropBitsSampler(spec_of(Mode::range, false), 3, true, GridKind::symmetric).survivors(kDropLevel3) ==
        V{-1, 0, 1});
  CHECK(DropBitsSampler(spec_of(Mode::range, false), 2, true, GridKind::rq).survivors(kDropLevel2) == V{-1, 0});
  // unsigned (activations)
  CHECK(DropBitsSampler(spec_of(Mode::resolution, false), 2, false, GridKind::rq).survivors(kDropLevel2) == V{0, 2});
  CHECK(DropBitsSampler(spec_of(Mode::range, true), 2, false, GridKind::rq).survivors(kDropLevel2) == V{0, 1, 3});
}

TEST_CASE("dropbits: per-element masks drop level l with p^(b-l+1), level 1 never") {
  DropBitsSampler d(spec_of(Mode::resolution, true, 0.3), 4, true, GridKind::rq);
  const int64_t n = 200000;
  std::vector<uint8_t> m1(n), m2(n);
  Generator g1(42), g2(42);
  const int prev_threads = get_num_threads();
  set_num_threads(1);
  d.sample_elements(g1, n, m1.data());
  set_num_threads(2);
  d.sample_elements(g2, n, m2.data());
  set_num_threads(prev_threads);
  CHECK(m1 == m2);  // independent of the thread count
  CHECK(g1.offset() == static_cast<uint64_t>(n));
  int64_t count[9] = {};
  for (uint8_t m : m1)
    for (int l = 1; l <= 8; ++l) count[l] += (m >> (l - 1)) & 1;
  CHECK(count[1] == 0);
  CHECK(double(count[4]) / n == Approx(0.3).margin(0.005));
  CHECK(double(count[3]) / n == Approx(0.09).margin(0.003));
  CHECK(double(count[2]) / n == Approx(0.027).margin(0.002));
  CHECK(count[5] + count[6] + count[7] + count[8] == 0);
  // the next draw differs (the stream moved on)
  std::vector<uint8_t> m3(n);
  d.sample_elements(g1, n, m3.data());
  CHECK(m3 != m1);
  // per tensor: one mask per draw with the same rates
  Generator gt(7);
  int64_t drops = 0;
  for (int i = 0; i < 20000; ++i) drops += (d.sample_tensor(gt) >> 3) & 1;
  CHECK(double(drops) / 20000 == Approx(0.3).margin(0.015));
}
