// wave, hashed_uniform and the parameter setters built on them.
#include "fixture_values.h"

#include <cmath>

namespace lowbit::test {

Tensor wave(const Shape& shape, double freq, double phase, double scale) {
  std::vector<float> v(static_cast<size_t>(numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(std::sin(double(i) * freq + phase) * scale);
  return Tensor::from_vector(v, shape);
}

void set_wave_params(Module& m) {
  NamedTensors entries;
  int j = 0;
  for (const auto& [n, p] : m.named_parameters()) {
    const int64_t fan = p.dim() > 1 ? p.numel() / p.size(0) : 1;
    entries.emplace_back(n, wave(p.shape(), 0.7, 1.3 * j++, std::sqrt(3.0 / double(fan))));
  }
  LoadReport r = m.load_state_dict(entries, false);
  LOWBIT_CHECK(r.unexpected.empty() && r.shape_mismatch.empty(), "set_wave_params", "the parameters did not load");
}

namespace {

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

Tensor hashed_uniform(const Shape& shape, uint64_t seed, double lo, double hi) {
  std::vector<float> v(static_cast<size_t>(numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) {
    const double u = double(splitmix64((seed << 32) + i) >> 40) / double(1 << 24);
    v[i] = static_cast<float>(lo + (hi - lo) * u);
  }
  return Tensor::from_vector(v, shape);
}

void set_hashed_params(Module& m) {
  NamedTensors entries;
  uint64_t j = 0;
  for (const auto& [n, p] : m.named_parameters()) {
    const int64_t fan = p.dim() > 1 ? p.numel() / p.size(0) : 1;
    const double a = std::sqrt(3.0 / double(fan));
    const bool gain = p.dim() == 1 && n.size() >= 7 && n.compare(n.size() - 7, 7, ".weight") == 0;
    entries.emplace_back(n, gain ? hashed_uniform(p.shape(), ++j, 1 - a / 4, 1 + a / 4)
                                 : hashed_uniform(p.shape(), ++j, -a, a));
  }
  LoadReport r = m.load_state_dict(entries, false);
  LOWBIT_CHECK(r.unexpected.empty() && r.shape_mismatch.empty(), "set_hashed_params", "the parameters did not load");
}

}  // namespace lowbit::test
