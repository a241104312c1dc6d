// CPU dropout: one Philox block per four elements, split over whole blocks so every
// element's draw is the same whatever the thread count.
#include <algorithm>

#include "../kernels/dropout.h"
#include "../parallel.h"

namespace lowbit::cpu {

void dropout(const Tensor& x, Tensor& y, Tensor& mask, const Generator& gen, uint64_t base, float p, float scale) {
  const int64_t n = x.numel();
  const float* px = x.data<float>();
  float* py = y.data<float>();
  uint8_t* pm = mask.defined() ? mask.data<uint8_t>() : nullptr;
  parallel_for((n + 3) / 4, 1 << 12, [&](int64_t b, int64_t e) {
    uint32_t r[4 * 64];
    for (int64_t blk = b; blk < e; blk += 64) {
      const int64_t m = std::min<int64_t>(64, e - blk);
      gen.fill(base + static_cast<uint64_t>(blk), m, r);
      const int64_t i0 = blk * 4, len = std::min<int64_t>(4 * m, n - i0);
      // Multiplying by 0 or scale (no branch: keep is a coin flip) also propagates
      // inf/NaN through dropped elements, as torch's x * mask * scale does.
      for (int64_t j = 0; j < len; ++j) {
        const bool keep = !(uint_to_unit(r[j]) < p);
        py[i0 + j] = px[i0 + j] * (static_cast<float>(keep) * scale);
        if (pm) pm[i0 + j] = keep;
      }
    }
  });
}

void dropout_backward(const Tensor& dy, const Tensor& mask, float scale, Tensor& dx) {
  const int64_t n = dy.numel();
  const float* pg = dy.data<float>();
  const uint8_t* pm = mask.data<uint8_t>();
  float* pd = dx.data<float>();
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) pd[i] = pg[i] * (static_cast<float>(pm[i]) * scale);
  });
}

}  // namespace lowbit::cpu
