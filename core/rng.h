// Counter-based random numbers (Philox-4x32-10): a stream is (key, counter), so any
// element's value can be computed independently of thread count, and a generator can
// be split into independent streams per consumer (init, dropout, data order, ...).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace lowbit {

using PhiloxBlock = std::array<uint32_t, 4>;

// The Philox-4x32-10 block function of Salmon et al. (SC'11).
PhiloxBlock philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo);

// Blocks for counters [first, first + n) of (key, counter_hi) into out[4 * n], written
// lane-parallel so the compiler vectorises the rounds (several times faster than n calls).
void philox4x32_fill(uint64_t key, uint64_t counter_hi, uint64_t first, int64_t n, uint32_t* out);

// Maps 32 random bits to a float in [0, 1) (24 significant bits).
inline float uint_to_unit(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  // An independent generator for consumer `id` (e.g. a hash of "dropout").
  Generator split(uint64_t id) const;
  Generator split(const std::string& name) const;

  // Reserves n counter values and returns the first; kernels then compute values
  // for counters [first, first + n) in any order or thread split.
  uint64_t reserve(uint64_t n) {
    uint64_t first = offset_;
    offset_ += n;
    return first;
  }
  PhiloxBlock block(uint64_t counter) const { return philox4x32(key(), stream_, counter); }
  // The blocks of counters [first, first + n) as 4 * n words.
  void fill(uint64_t first, int64_t n, uint32_t* out) const { philox4x32_fill(key(), stream_, first, n, out); }

  // Sequential draws (each consumes one counter value).
  uint32_t next_u32() { return block(reserve(1))[0]; }
  uint64_t next_u64();
  float uniform() { return uint_to_unit(next_u32()); }
  float normal();
  // Uniform integer in [0, n) without modulo bias.
  uint64_t below(uint64_t n);

  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }
  uint64_t offset() const { return offset_; }
  // Restores a saved position (checkpoints store seed, stream and offset).
  void set_state(uint64_t seed, uint64_t stream, uint64_t offset) {
    seed_ = seed;
    stream_ = stream;
    offset_ = offset;
  }
  uint64_t key() const { return seed_; }

 private:
  uint64_t seed_ = 0, stream_ = 0, offset_ = 0;
};

// Normal sample for element `i` of a block stream: Box-Muller on the first two words.
float normal_from_block(const PhiloxBlock& b);

// The process-wide generator used when none is given; manual_seed resets it.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace lowbit
