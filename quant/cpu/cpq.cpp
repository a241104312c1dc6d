// CPU logistic-bin quantizer kernels: the tensor entry points of the fused CPQ kernels
// (quant/cpq_kernel.cpp) and DropBits mask sampling (RQ's pass is in quant/cpu/rq.cpp).
#include <algorithm>
#include <cmath>

#include "../../core/parallel.h"
#include "../kernels/cpq.h"

namespace lowbit::cpu {

void cpq_forward(const Tensor& x, const CpqArgs& args, const Tensor& elem_mask, Tensor& y) {
  CpqArgs a = args;
  a.mask.elem_mask = elem_mask.defined() ? elem_mask.data<uint8_t>() : nullptr;
  ::lowbit::cpq_forward(x.data<float>(), x.numel(), a, y.data<float>());
}

void cpq_backward(const Tensor& x, const Tensor& dy, const CpqArgs& args, const Tensor& elem_mask,
                  const CpqGradOut& grads, Tensor& dx) {
  CpqArgs a = args;
  a.mask.elem_mask = elem_mask.defined() ? elem_mask.data<uint8_t>() : nullptr;
  CpqGradOut out = grads;
  out.dx = dx.defined() ? dx.data<float>() : nullptr;
  ::lowbit::cpq_backward(x.data<float>(), dy.data<float>(), x.numel(), a, out);
}

void dropbits_masks(const Generator& gen, uint64_t base, const DropBitsDraw& d, Tensor& out_t) {
  uint8_t* out = out_t.data<uint8_t>();
  parallel_for(out_t.numel(), 1 << 12, [&](int64_t b, int64_t e) {
    uint32_t r[4 * 64];
    for (int64_t i = b; i < e; i += 64) {
      const int64_t m = std::min<int64_t>(64, e - i);
      gen.fill(base + static_cast<uint64_t>(i), m, r);
      for (int64_t j = 0; j < m; ++j)
        out[i + j] = dropbits_mask(r[4 * j], r[4 * j + 1], r[4 * j + 2], r[4 * j + 3], d.bits, d.threshold);
    }
  });
}

}  // namespace lowbit::cpu
