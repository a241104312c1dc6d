// Inverted dropout with a counter-based mask: reproducible and independent of the thread count.
#pragma once

#include "../rng.h"
#include "../tensor.h"

namespace lowbit {

// Training: each element is zeroed with probability p and the rest scaled by 1/(1 - p).
// Element i is dropped iff the i-th value that Tensor::rand(x.shape(), gen) would draw is
// below p; the call advances gen exactly as that draw would. p = 0 or !training returns x
// itself (gen untouched); p = 1 gives zeros. p outside [0, 1] is an error.
// The gradient is dy times the same mask and scale.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace lowbit
