// The softmax family: softmax and log_softmax over one axis (logsumexp is in reduce.h).
#pragma once

#include "../tensor.h"

namespace lowbit {

// exp(x) / sum(exp(x)) along `axis` (negative counts from the end), computed with the
// slice maximum subtracted so large logits do not overflow.
Tensor softmax(const Tensor& x, int64_t axis = -1);
// x - logsumexp(x) along `axis`: exact where log(softmax(x)) would underflow to -inf.
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

}  // namespace lowbit
