// CPU uniform-grid quantizer kernels: grid round/clamp, the ste_uniform and lsq backwards and
// abs-max. Moved unchanged from quant/quantizer.cpp, ste_uniform.cpp and lsq.cpp: the results
// are bit-identical to those loops.
#include <algorithm>
#include <cmath>

#include "../../core/parallel.h"
#include "../kernels/uniform.h"

namespace lowbit::cpu {

namespace {
template <class F>
void for_each_channel(const Tensor& x, const Tensor& alpha, const char* where, F&& f) {
  LOWBIT_CHECK(x.dtype() == DType::f32, where, "expects f32 input, got ", dtype_name(x.dtype()));
  LOWBIT_CHECK(alpha.defined() && alpha.dtype() == DType::f32, where, "alpha must be an f32 tensor");
  const int64_t channels = alpha.numel();
  LOWBIT_CHECK(channels == 1 || (x.dim() > 0 && x.size(0) == channels), where, "alpha of ", channels,
               " values does not match x of shape ", shape_str(x.shape()), " (per channel is along dim 0)");
  const int64_t n = x.numel();
  const int64_t inner = channels == 1 ? n : n / channels;
  const float* a = alpha.data<float>();
  parallel_for(n, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) f(i, a[channels == 1 ? 0 : i / inner]);
  });
}
}  // namespace

void grid_quantize(const Tensor& x, const Tensor& alpha, GridRange range, Tensor& y) {
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const float lo = static_cast<float>(range.qmin), hi = static_cast<float>(range.qmax);
  for_each_channel(x, alpha.to(Device::cpu()), "grid_quantize",
                   [&](int64_t i, float a) { py[i] = grid_value(px[i], a, lo, hi); });
}

void grid_codes(const Tensor& x, const Tensor& alpha, GridRange range, Tensor& codes) {
  const float* px = x.data<float>();
  int32_t* pc = codes.data<int32_t>();
  const float lo = static_cast<float>(range.qmin), hi = static_cast<float>(range.qmax);
  for_each_channel(x, alpha.to(Device::cpu()), "grid_codes",
                   [&](int64_t i, float a) { pc[i] = static_cast<int32_t>(grid_code(px[i], a, lo, hi)); });
}

void ste_backward(const Tensor& x, const Tensor& alpha_t, GridRange range, const Tensor& dy, Tensor& dx) {
  const Tensor alpha = alpha_t.to(Device::cpu());
  const float* px = x.data<float>();
  const float* pg = dy.data<float>();
  float* pd = dx.data<float>();
  const float* a = alpha.data<float>();
  const int64_t n = x.numel(), channels = alpha.numel(), inner = channels == 1 ? n : n / channels;
  const float lo = static_cast<float>(range.qmin), hi = static_cast<float>(range.qmax);
  parallel_for(n, 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float v = px[i] / a[channels == 1 ? 0 : i / inner];
      pd[i] = v >= lo && v <= hi ? pg[i] : 0.0f;
    }
  });
}

void lsq_backward(const Tensor& x, const Tensor& alpha_t, GridRange range, const Tensor& dy, Tensor& dx,
                  std::vector<double>* dalpha) {
  const Tensor alpha = alpha_t.to(Device::cpu());
  const bool want_a = dalpha != nullptr;
  const float* px = x.data<float>();
  const float* pg = dy.data<float>();
  const float* a = alpha.data<float>();
  const int64_t n = x.numel(), channels = alpha.numel(), inner = channels == 1 ? n : n / channels;
  const float lo = static_cast<float>(range.qmin), hi = static_cast<float>(range.qmax);
  float* pd = dx.defined() ? dx.data<float>() : nullptr;
  // Per channel, per chunk partial sums, added in chunk order: reproducible for a thread count.
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(64, n / (1 << 14)));
  std::vector<double> partial(static_cast<size_t>(chunks * channels), 0.0);
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t k = cb; k < ce; ++k) {
      const int64_t begin = n * k / chunks, end = n * (k + 1) / chunks;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t c = channels == 1 ? 0 : i / inner;
        const float v = px[i] / a[c];
        const bool inside = v >= lo && v <= hi;
        if (pd) pd[i] = inside ? pg[i] : 0.0f;
        if (want_a) {
          const float d = inside ? std::nearbyint(v) - v : (v < lo ? lo : hi);
          partial[static_cast<size_t>(k * channels + c)] += static_cast<double>(pg[i]) * d;
        }
      }
    }
  });
  if (!want_a) return;
  dalpha->assign(static_cast<size_t>(channels), 0.0);
  for (int64_t c = 0; c < channels; ++c) {
    double s = 0;
    for (int64_t k = 0; k < chunks; ++k) s += partial[static_cast<size_t>(k * channels + c)];
    (*dalpha)[static_cast<size_t>(c)] = s;
  }
}

void abs_max(const Tensor& x, int64_t channels, std::vector<float>& m) {
  m.assign(static_cast<size_t>(channels), 0.0f);
  const float* p = x.data<float>();
  const int64_t n = x.numel(), inner = channels == 1 ? n : n / channels;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = channels == 1 ? 0 : i / inner;
    m[c] = std::max(m[c], std::fabs(p[i]));
  }
}

}  // namespace lowbit::cpu
