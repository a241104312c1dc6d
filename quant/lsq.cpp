// lsq: forward, LSQ gradient and initialisation (Esser et al., "Learned Step Size Quantization", ICLR 2020).
#include "lsq.h"

#include <algorithm>
#include <cmath>

#include "../core/dispatch.h"
#include "kernels/uniform.h"

namespace lowbit {

namespace {
LOWBIT_DISPATCH_STUB(LsqBackwardKernel, lsq_backward_stub, cpu::lsq_backward, LOWBIT_CUDA_KERNEL(cuda::lsq_backward));
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
  const int64_t channels = alpha_.numel();
  Tensor dx = want_x ? Tensor::empty(x_.shape(), DType::f32, x_.device()) : Tensor();
  std::vector<double> sums;  // per channel sum of dy * dx_hat/dalpha, in a fixed order
  lsq_backward_stub[x_.device()](x_.detach(), alpha_, range_, dy, dx, want_a ? &sums : nullptr);
  Tensor draw;
  if (want_a) {
    const std::vector<float> r = raw_.detach().to_vector<float>();  // a copy from the device where needed
    std::vector<float> pr(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c)
      pr[c] = static_cast<float>(sums[static_cast<size_t>(c)] * grad_scale_ * sigmoid_scalar(r[c]));
    draw = Tensor::from_vector(pr, raw_.shape()).to(raw_.device());
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
  raw.copy_(Tensor::from_vector(r, raw.shape()).to(raw.device()));
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
