// CPU shape-op kernels.
#include <cstring>

#include "../kernels/shape.h"
#include "broadcast.h"

namespace lowbit::cpu {

void expand(const Tensor& x, Tensor& out) {
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  const int64_t es = static_cast<int64_t>(dtype_size(x.dtype()));
  auto plan = make_plan<1>(out.shape(), {&x.shape()});
  for_each_run(plan, 1 << 15, [&](int64_t o, const std::array<int64_t, 1>& off, int64_t n,
                                  const std::array<int64_t, 1>& st) {
    if (st[0] == 1) {
      std::memcpy(po + o * es, px + off[0] * es, static_cast<size_t>(n * es));
    } else {
      for (int64_t i = 0; i < n; ++i) std::memcpy(po + (o + i) * es, px + (off[0] + i * st[0]) * es, es);
    }
  });
}

}  // namespace lowbit::cpu
