// lsq: forward, LSQ gradient and initialisation (Esser et al., "Learned Step Size Quantization", ICLR 2020).
#include "lsq.h"

#include <algorithm>
#include <cmath>

#include "../core/parallel.h"

namespace lowbit {

namespace {
constexpr float kMinStep = 1e-8f;
double positive_qmax(GridRange r) { return static_cast<double>(std::max<int64_t>(r.qmax, 1)); }
}  // namespace

Tensor lsq_alpha(const Tensor& alpha_raw) {
  Tensor raw = alpha_raw.detach().to(Device::cpu());
  Tensor a = Tensor::empty(raw.shape());
  const float* r = raw.data<float>();
  float* p = a.data<float>();
  for (int64_t i = 0; i < raw.numel(); ++i) p[i] = std::max(static_cast<float>(softplus(r[i])), kMinStep);
  return a;
}

Tensor LsqSte::forward(const std::vector<Tensor>& inputs) {
  x_ = inputs.at(0);
  raw_ = inputs.at(1);
  alpha_ = lsq_alpha(raw_);
  return grid_quantize(x_, alpha_, range_);
}

std::vector<Tensor> LsqSte::backward(const Tensor& dy) {
  const bool want_x = needs_input_grad(0), want_a = needs_input_grad(1);
  const float* px = x_.data<float>();
  const float* pg = dy.data<float>();
  const float* a = alpha_.data<float>();
  const int64_t n = x_.numel(), channels = alpha_.numel(), inner = channels == 1 ? n : n / channels;
  const float lo = static_cast<float>(range_.qmin), hi = static_cast<float>(range_.qmax);
  Tensor dx = want_x ? Tensor::empty(x_.shape()) : Tensor();
  float* pd = want_x ? dx.data<float>() : nullptr;
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
  Tensor draw;
  if (want_a) {
    draw = Tensor::empty(raw_.shape());
    const float* r = raw_.data<float>();
    float* pr = draw.data<float>();
    for (int64_t c = 0; c < channels; ++c) {
      double s = 0;
      for (int64_t k = 0; k < chunks; ++k) s += partial[static_cast<size_t>(k * channels + c)];
      pr[c] = static_cast<float>(s * grad_scale_ * sigmoid_scalar(r[c]));
    }
  }
  return {dx, draw};
}

LsqQuantizer::LsqQuantizer(const QuantSpec& spec) : Quantizer(spec, "LsqQuantizer") {
  const int64_t c = spec.channels();
  const double raw = softplus_inverse(1.0);
  register_parameter("alpha_raw", c == 1 && !spec.per_channel ? Tensor::scalar(raw) : Tensor::full({c}, raw));
}

QuantizerCapabilities LsqQuantizer::capabilities() {
  QuantizerCapabilities caps;
  caps.options = {"grad_scale"};
  caps.summary = "uniform grid with a learned step and LSQ's gradient scale";
  return caps;
}

void LsqQuantizer::init_from(const Tensor& x) {
  Tensor raw = parameter("alpha_raw");
  const double qp = positive_qmax(range());
  std::vector<float> m = abs_mean(x, spec().channels());
  std::vector<float> r;
  for (float v : m) r.push_back(static_cast<float>(softplus_inverse(std::max(2.0 * v / std::sqrt(qp), 1e-6))));
  raw.copy_(Tensor::from_vector(r, raw.shape()));
}

Tensor LsqQuantizer::quantize(const Tensor& x) {
  const GridRange r = range();
  double g = 1.0;
  if (spec().option_bool("grad_scale", true)) {
    // N: the elements one step value covers (per channel slice; per example for activations).
    const int64_t channels = spec().channels();
    int64_t n = channels > 1 ? x.numel() / channels : x.numel();
    if (role() == QuantRole::activation && x.dim() > 1) n = x.numel() / x.size(0);
    g = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(n, 1)) * positive_qmax(r));
  }
  return CustomFunction::apply<LsqSte>({x, parameter("alpha_raw")}, r, g);
}

}  // namespace lowbit
