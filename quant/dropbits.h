// DropBits (SRQ, Lee et al. 2019; CPQ, ICCV 2021): the level of every grid point and random
// masks that drop whole levels, finest with probability p, the next with p^2, ...
#pragma once

#include <cstdint>
#include <vector>

#include "../core/rng.h"
#include "grid.h"
#include "quantizer.h"

namespace lowbit {

// The level of each code of the b-bit grid (index k is code qmin + k): the coarsest bit-width
// l in 1..b whose grid holds the code. The l-bit grid is, in mode resolution, the l-bit code
// range scaled by 2^(b-l) (dropping least significant bits: step doubles per bit, 0 and the
// lower end stay); in mode range, the l-bit code range itself (dropping most significant bits:
// the step stays, the range halves). A symmetric 1-bit grid holds only 0.
std::vector<int> code_levels(int bits, bool is_signed, GridKind kind, DropBitsSpec::Mode mode);

// P(level l is dropped) for a b-bit grid: p^(b - l + 1) for l >= 2; level 1 is never dropped.
double level_drop_probability(int level, int bits, double p);

// Per tensor: which mask bit drops each code, and sampling of the masks. Mask byte bit (l-1)
// set = level l dropped for that element (or for the whole tensor).
class DropBitsSampler {
 public:
  // bits in 1..8 (one mask byte). protect_ends keeps the lowest and highest codes.
  DropBitsSampler(const DropBitsSpec& spec, int bits, bool is_signed, GridKind kind);

  const std::vector<int>& levels() const { return levels_; }
  // drop_bit()[k]: the mask bit that drops code k; 0 for codes never dropped.
  const std::vector<uint8_t>& drop_bit() const { return drop_bit_; }
  int bits() const { return bits_; }

  // One mask for the whole tensor (consumes one counter value of gen).
  uint8_t sample_tensor(Generator& gen) const;
  // One mask byte per element; element i uses Philox block (base + i) of gen, so the masks do
  // not depend on the thread count. Consumes numel counter values.
  void sample_elements(Generator& gen, int64_t numel, uint8_t* out) const;
  // The same draw as a u8 tensor of `shape` on `device` (sampled there, the same bits).
  Tensor sample_elements(Generator& gen, const Shape& shape, Device device) const;
  // The codes (absolute) that survive `mask`.
  std::vector<int64_t> survivors(uint8_t mask) const;

 private:
  uint8_t mask_from_block(const PhiloxBlock& b) const;
  DropBitsSpec spec_;
  int bits_;
  GridRange range_;
  std::vector<int> levels_;
  std::vector<uint8_t> drop_bit_;
  uint32_t threshold_[8] = {};  // level l dropped when its 16-bit uniform < threshold_[l-1]
};

}  // namespace lowbit
