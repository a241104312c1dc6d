// DropBits: grid-point levels for both readings (resolution, range) and Philox level masks.
#include "dropbits.h"

#include <algorithm>
#include <cmath>

#include "../core/dispatch.h"
#include "../core/error.h"
#include "kernels/cpq.h"

namespace lowbit {

namespace {
LOWBIT_DISPATCH_STUB(DropBitsMaskKernel, dropbits_stub, cpu::dropbits_masks, LOWBIT_CUDA_KERNEL(cuda::dropbits_masks));

// The l-bit code range of the same kind; the symmetric 1-bit grid is {0}.
GridRange level_range(int l, bool is_signed, GridKind kind) {
  if (is_signed && kind == GridKind::symmetric && l == 1) return {0, 0};
  return grid_range(l, is_signed, kind);
}
}  // namespace

std::vector<int> code_levels(int bits, bool is_signed, GridKind kind, DropBitsSpec::Mode mode) {
  const GridRange r = grid_range(bits, is_signed, kind);
  std::vector<int> level(static_cast<size_t>(r.levels()), bits);
  for (int64_t c = r.qmin; c <= r.qmax; ++c) {
    for (int l = 1; l < bits; ++l) {
      const GridRange g = level_range(l, is_signed, kind);
      bool holds;
      if (mode == DropBitsSpec::Mode::resolution) {
        const int64_t step = int64_t{1} << (bits - l);
        holds = c % step == 0 && c / step >= g.qmin && c / step <= g.qmax;
      } else {
        holds = c >= g.qmin && c <= g.qmax;
      }
      if (holds) {
        level[static_cast<size_t>(c - r.qmin)] = l;
        break;
      }
    }
  }
  return level;
}

double level_drop_probability(int level, int bits, double p) {
  if (level <= 1 || level > bits) return 0.0;
  return std::pow(p, bits - level + 1);
}

DropBitsSampler::DropBitsSampler(const DropBitsSpec& spec, int bits, bool is_signed, GridKind kind)
    : spec_(spec), bits_(bits), range_(grid_range(bits, is_signed, kind)) {
  LOWBIT_CHECK(bits >= 1 && bits <= 8, "dropbits", "DropBits supports 1..8 bits, got ", bits);
  LOWBIT_CHECK(spec.p >= 0 && spec.p <= 1, "dropbits", "p must be in [0, 1], got ", spec.p);
  levels_ = code_levels(bits, is_signed, kind, spec.mode);
  drop_bit_.assign(levels_.size(), 0);
  for (size_t k = 0; k < levels_.size(); ++k) {
    const bool end = k == 0 || k + 1 == levels_.size();
    if (levels_[k] >= 2 && !(spec.protect_ends && end)) drop_bit_[k] = static_cast<uint8_t>(1u << (levels_[k] - 1));
  }
  for (int l = 2; l <= bits; ++l)
    threshold_[l - 1] = static_cast<uint32_t>(std::lround(level_drop_probability(l, bits, spec.p) * 65536.0));
}

// Level l uses the 16-bit half (b - l) % 2 of word (b - l) / 2 of the element's block.
// (dropbits_mask in quant/kernels/cpq.h, shared with the CUDA kernel.)
uint8_t DropBitsSampler::mask_from_block(const PhiloxBlock& b) const {
  return dropbits_mask(b[0], b[1], b[2], b[3], bits_, threshold_);
}

uint8_t DropBitsSampler::sample_tensor(Generator& gen) const { return mask_from_block(gen.block(gen.reserve(1))); }

void DropBitsSampler::sample_elements(Generator& gen, int64_t numel, uint8_t* out) const {
  Tensor t = sample_elements(gen, Shape{numel}, Device::cpu());
  std::copy(t.data<uint8_t>(), t.data<uint8_t>() + numel, out);
}

Tensor DropBitsSampler::sample_elements(Generator& gen, const Shape& shape, Device device) const {
  Tensor out = Tensor::empty(shape, DType::u8, device);
  const uint64_t base = gen.reserve(static_cast<uint64_t>(out.numel()));
  DropBitsDraw d;
  d.bits = bits_;
  std::copy(threshold_, threshold_ + 8, d.threshold);
  dropbits_stub[device](gen, base, d, out);
  return out;
}

std::vector<int64_t> DropBitsSampler::survivors(uint8_t mask) const {
  std::vector<int64_t> out;
  for (size_t k = 0; k < levels_.size(); ++k)
    if (!(mask & drop_bit_[k])) out.push_back(range_.qmin + static_cast<int64_t>(k));
  return out;
}

}  // namespace lowbit
