// Integer grids shared by every quantizer: code ranges for b bits, round-to-grid, positive parametrisations.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/error.h"

namespace lowbit {

// Which signed integer grid a weight quantizer uses (QUANTIZERS.md, "DropBits"):
//   rq        {-2^(b-1), ..., 2^(b-1) - 1}      (RQ's asymmetric grid, the default)
//   symmetric {-(2^(b-1) - 1), ..., 2^(b-1) - 1} (narrow range; needs b >= 2)
// Unsigned tensors (activations after a ReLU) always use {0, ..., 2^b - 1}.
enum class GridKind { rq, symmetric };

// The inclusive code range [qmin, qmax]; every grid holds 0.
struct GridRange {
  int64_t qmin = 0, qmax = 0;
  int64_t levels() const { return qmax - qmin + 1; }
  friend bool operator==(const GridRange&, const GridRange&) = default;
};

inline GridRange grid_range(int bits, bool is_signed, GridKind kind = GridKind::rq) {
  LOWBIT_CHECK(bits >= 1 && bits <= 16, "grid_range", "bits must be in 1..16, got ", bits);
  const int64_t half = int64_t{1} << (bits - 1);
  if (!is_signed) return {0, 2 * half - 1};
  if (kind == GridKind::rq) return {-half, half - 1};
  LOWBIT_CHECK(bits >= 2, "grid_range", "the symmetric grid needs at least 2 bits (1 bit holds only 0)");
  return {-(half - 1), half - 1};
}

// The code of x on the grid of step alpha: clamp(round(x / alpha), qmin, qmax), rounding
// halves to even (as torch.round). Every quantizer's eval forward and export_int() use this
// one function, so codes * alpha reproduce the eval forward bit for bit.
inline float grid_code(float x, float alpha, float qmin, float qmax) {
  // + 0.0f turns -0 into +0, so code 0 dequantizes to the same bits as integer 0 does.
  float q = std::nearbyint(x / alpha) + 0.0f;
  return q < qmin ? qmin : (q > qmax ? qmax : q);  // NaN stays NaN; callers reject non-finite input
}
// The dequantized value: exactly code * alpha in float.
inline float grid_value(float x, float alpha, float qmin, float qmax) {
  return grid_code(x, alpha, qmin, qmax) * alpha;
}

// Positive parameters (alpha, sigma) are stored raw and mapped through softplus:
// alpha = log(1 + exp(raw)); d alpha / d raw = sigmoid(raw). Stable for large |raw|.
inline double softplus(double raw) { return raw > 20 ? raw : std::log1p(std::exp(raw)); }
inline double softplus_inverse(double value) {
  LOWBIT_CHECK(value > 0 && std::isfinite(value), "softplus_inverse", "needs a positive finite value, got ", value);
  return value > 20 ? value : std::log(std::expm1(value));
}
inline double sigmoid_scalar(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }

}  // namespace lowbit
