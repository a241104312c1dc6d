// Deterministic values shared with the PyTorch fixture generators (tests/fixtures/golden_io.py),
// so a model and a batch can be set up identically on both sides without storing them.
#pragma once

#include "core/tensor.h"
#include "layers/module.h"

namespace lowbit::test {

// sin(freq * i + phase) * scale over the flat index i, in double, rounded to float.
Tensor wave(const Shape& shape, double freq, double phase, double scale = 1.0);

// The j-th of m.named_parameters() gets wave(0.7, 1.3 j, sqrt(3 / fan)), fan = numel / size(0)
// for matrices and kernels, 1 for vectors. Loaded with load_state_dict (no grad history).
void set_wave_params(Module& m);

// Uniform values in [lo, hi) without structure (wave() repeats, which gives quantized models
// exact ties): u_i = (splitmix64(seed * 2^32 + i) >> 40) / 2^24, then lo + (hi - lo) u_i in
// double, rounded to float.
Tensor hashed_uniform(const Shape& shape, uint64_t seed, double lo, double hi);

// The j-th of m.named_parameters() gets hashed_uniform(seed j + 1, +-sqrt(3 / fan)) (fan as in
// set_wave_params), except BatchNorm-like vectors (names ending in ".weight" with one
// dimension), which get 1 + that / 4, so no channel is switched off.
void set_hashed_params(Module& m);

}  // namespace lowbit::test
