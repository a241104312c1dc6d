// Philox-4x32-10 and the Generator built on it.
#include "rng.h"

#include <algorithm>
#include <cmath>

namespace lowbit {

namespace {
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

PhiloxBlock philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo) {
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c0, hi0, lo0);
    mulhilo(kM1, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  return {c0, c1, c2, c3};
}

void philox4x32_fill(uint64_t key, uint64_t counter_hi, uint64_t first, int64_t n, uint32_t* out) {
  constexpr int kLanes = 16;
  const uint32_t c2i = static_cast<uint32_t>(counter_hi), c3i = static_cast<uint32_t>(counter_hi >> 32);
  for (int64_t base = 0; base < n; base += kLanes) {
    const int m = static_cast<int>(std::min<int64_t>(kLanes, n - base));
    uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      uint64_t ctr = first + static_cast<uint64_t>(base + l);
      c0[l] = static_cast<uint32_t>(ctr);
      c1[l] = static_cast<uint32_t>(ctr >> 32);
      c2[l] = c2i;
      c3[l] = c3i;
    }
    uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
    for (int r = 0; r < 10; ++r) {
      for (int l = 0; l < kLanes; ++l) {
        uint64_t p0 = static_cast<uint64_t>(kM0) * c0[l], p1 = static_cast<uint64_t>(kM1) * c2[l];
        uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0, n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
        c1[l] = static_cast<uint32_t>(p1);
        c3[l] = static_cast<uint32_t>(p0);
        c0[l] = n0;
        c2[l] = n2;
      }
      k0 += kW0;
      k1 += kW1;
    }
    for (int l = 0; l < m; ++l) {
      uint32_t* o = out + 4 * (base + l);
      o[0] = c0[l];
      o[1] = c1[l];
      o[2] = c2[l];
      o[3] = c3[l];
    }
  }
}

Generator Generator::split(uint64_t id) const {
  // A new key derived from ours and the id: streams of different consumers never overlap.
  return Generator(splitmix64(seed_ ^ splitmix64(id + 0x632BE59BD9B4E019ull)), stream_);
}

Generator Generator::split(const std::string& name) const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return split(h);
}

uint64_t Generator::next_u64() {
  PhiloxBlock b = block(reserve(1));
  return (static_cast<uint64_t>(b[0]) << 32) | b[1];
}

float normal_from_block(const PhiloxBlock& b) {
  // u1 in (0, 1] so log(u1) is finite.
  float u1 = (static_cast<float>(b[0] >> 8) + 1.0f) * (1.0f / 16777216.0f);
  float u2 = uint_to_unit(b[1]);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795864769f * u2);
}

float Generator::normal() { return normal_from_block(block(reserve(1))); }

uint64_t Generator::below(uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    uint64_t x = next_u64();
    if (x < limit) return x % n;
  }
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator() = Generator(seed); }

}  // namespace lowbit
