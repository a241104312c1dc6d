// ste_uniform: forward, estimator and initialisation (QUANTIZERS.md "Baselines"; DoReFa-Net, Zhou et al. 2016).
#include "ste_uniform.h"

#include <algorithm>

#include "../core/dispatch.h"
#include "kernels/uniform.h"

namespace lowbit {

namespace {
LOWBIT_DISPATCH_STUB(SteBackwardKernel, ste_backward_stub, cpu::ste_backward, LOWBIT_CUDA_KERNEL(cuda::ste_backward));

// A step of 0 (an all-zero tensor) would divide by 0; any positive step quantizes zeros exactly.
constexpr float kMinStep = 1e-8f;

float step_divisor(GridRange r) { return static_cast<float>(r.qmax > 0 ? r.qmax : -r.qmin); }

Tensor steps_from(const std::vector<float>& extent, GridRange r, const Shape& shape) {
  std::vector<float> a;
  for (float e : extent) a.push_back(std::max(e / step_divisor(r), kMinStep));
  return Tensor::from_vector(a, shape);
}
}  // namespace

Tensor SteUniformSte::forward(const std::vector<Tensor>& inputs) {
  x_ = inputs.at(0);
  return grid_quantize(x_, alpha_, range_);
}

std::vector<Tensor> SteUniformSte::backward(const Tensor& dy) {
  if (!needs_input_grad(0)) return {Tensor()};
  Tensor dx = Tensor::empty(x_.shape(), DType::f32, x_.device());
  ste_backward_stub[x_.device()](x_.detach(), alpha_, range_, dy, dx);
  return {dx};
}

SteUniformQuantizer::SteUniformQuantizer(const QuantSpec& spec) : Quantizer(spec, "SteUniformQuantizer") {
  const int64_t c = spec.channels();
  register_buffer("alpha", c == 1 && !spec.per_channel ? Tensor::scalar(1) : Tensor::ones({c}));
}

QuantizerCapabilities SteUniformQuantizer::capabilities() {
  QuantizerCapabilities caps;
  caps.summary = "uniform grid, max-abs step, clipped straight-through estimator (DoReFa-style)";
  return caps;
}

void SteUniformQuantizer::init_from(const Tensor& x) {
  Tensor a = buffer("alpha");
  if (role() == QuantRole::weight) {
    a.copy_(steps_from(abs_max(x, spec().channels()), range(), a.shape()).to(a.device()));
    return;
  }
  const float extent = spec().act_init == "max" ? abs_max(x)[0] : abs_percentile(x, spec().act_percentile);
  a.copy_(steps_from({extent}, range(), a.shape()).to(a.device()));
}

Tensor SteUniformQuantizer::alpha_for(const Tensor& x) const {
  if (role() == QuantRole::activation) return buffer("alpha");
  return steps_from(abs_max(x, spec().channels()), range(), buffer("alpha").shape());
}

Tensor SteUniformQuantizer::quantize(const Tensor& x) {
  Tensor alpha = alpha_for(x);
  if (role() == QuantRole::weight) {  // the report shows the step in use
    Tensor buf = buffer("alpha");
    buf.copy_(alpha.to(buf.device()));
  }
  return CustomFunction::apply<SteUniformSte>({x}, alpha, range());
}

IntTensor SteUniformQuantizer::export_int(const Tensor& x) const {
  IntTensor out;
  const Tensor xc = x.detach().to(Device::cpu());  // an export lives on the host
  out.scale = alpha_for(xc).to(Device::cpu()).clone();
  out.codes = grid_codes(xc, out.scale, range());
  out.bits = bits();
  out.is_signed = range().qmin < 0;
  return out;
}

}  // namespace lowbit
