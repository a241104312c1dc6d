// rq: the concrete relaxation over the logistic-bin categorical (forward sample, backward
// gradient), one fused pass per tensor, and the quantizer.
#include "rq.h"

#include <algorithm>
#include <cmath>

#include "../core/dispatch.h"
#include "cpq.h"
#include "kernels/cpq.h"

namespace lowbit {

namespace {
LOWBIT_DISPATCH_STUB(RqForwardKernel, rq_forward_stub, cpu::rq_forward, LOWBIT_CUDA_KERNEL(cuda::rq_forward));
LOWBIT_DISPATCH_STUB(RqBackwardKernel, rq_backward_stub, cpu::rq_backward, LOWBIT_CUDA_KERNEL(cuda::rq_backward));
}  // namespace

RqArgs RqConcrete::args() const {
  RqArgs a;
  a.range = s_.range;
  a.temperature = static_cast<float>(s_.temperature);
  a.straight_through = s_.straight_through;
  a.window = s_.window;
  a.gen = s_.gen;
  a.base = s_.base;
  a.alpha = alpha_.data();
  a.sigma = sigma_.data();
  a.alpha_size = static_cast<int64_t>(alpha_.size());
  a.sigma_size = static_cast<int64_t>(sigma_.size());
  return a;
}

Tensor RqConcrete::forward(const std::vector<Tensor>& inputs) {
  LOWBIT_CHECK(inputs.size() == 3, "rq_concrete", "expects {x, alpha_raw, sigma_raw}");
  x_ = inputs[0].detach();
  LOWBIT_CHECK(x_.dtype() == DType::f32, "rq_concrete", "expects f32 input, got ", dtype_name(x_.dtype()));
  LOWBIT_CHECK(s_.range.levels() <= kRqMaxLevels, "rq_concrete", "supports up to 8 bits");
  LOWBIT_CHECK(s_.temperature > 0, "rq_concrete", "temperature must be positive, got ", s_.temperature);
  raw_a_ = inputs[1];
  raw_s_ = inputs[2];
  alpha_ = positive_values(raw_a_, s_.map);
  sigma_ = positive_values(raw_s_, s_.map);
  const int64_t C = static_cast<int64_t>(std::max(alpha_.size(), sigma_.size()));
  LOWBIT_CHECK(C == 1 || (x_.dim() > 0 && x_.size(0) == C), "rq_concrete", C, " channels do not match x of shape ",
               shape_str(x_.shape()));
  Tensor y = Tensor::empty(x_.shape(), DType::f32, x_.device());
  rq_forward_stub[x_.device()](x_, args(), y);
  return y;
}

std::vector<Tensor> RqConcrete::backward(const Tensor& dy) {
  std::vector<double> da(alpha_.size(), 0.0), ds(sigma_.size(), 0.0);
  Tensor dx = Tensor::empty(x_.shape(), DType::f32, x_.device());
  rq_backward_stub[x_.device()](x_, dy.to(x_.device()), args(), dx, da, ds);
  return {needs_input_grad(0) ? dx : Tensor(),
          needs_input_grad(1) ? positive_raw_gradient(raw_a_, da, s_.map) : Tensor(),
          needs_input_grad(2) ? positive_raw_gradient(raw_s_, ds, s_.map) : Tensor()};
}

RqQuantizer::RqQuantizer(const QuantSpec& spec) : Quantizer(spec, "RqQuantizer") {
  LOWBIT_CHECK(spec.bits <= 8, type_name_for_errors(), "rq supports up to 8 bits, got ", spec.bits);
  const int64_t c = spec.channels();
  auto make = [&](double v) { return spec.per_channel && c > 1 ? Tensor::full({c}, v) : Tensor::scalar(v); };
  const PositiveMap map = positive_map_of(spec);
  register_parameter("alpha_raw", make(positive_inverse(1.0, map)));
  register_parameter("sigma_raw", make(positive_inverse(1.0 / 3.0, map)));
  LOWBIT_CHECK(spec.option_double("temperature", 1.0) > 0, "quant.options.temperature", "must be positive");
  LOWBIT_CHECK(spec.option_double("window_sigmas", 3.0) > 0, "quant.options.window_sigmas", "must be positive");
  const std::string init = spec.option_string("init", "mse");
  LOWBIT_CHECK(init == "mse" || init == "max", "quant.options.init", "expected mse or max, got '", init, "'");
}

QuantizerCapabilities RqQuantizer::capabilities() {
  QuantizerCapabilities caps;
  caps.options = {"temperature", "straight_through", "window_sigmas", "sigma_init", "init", "positive"};
  caps.summary = "relaxed quantization: concrete sample over the logistic-bin categorical (RQ / RQ-ST)";
  return caps;
}

Tensor RqQuantizer::step() const {
  return Tensor::from_vector(positive_values(parameter("alpha_raw"), positive_map_of(spec())),
                             parameter("alpha_raw").shape());
}

std::vector<float> RqQuantizer::sigma_values() const {
  return positive_values(parameter("sigma_raw"), positive_map_of(spec()));
}

void RqQuantizer::init_from(const Tensor& x) {
  // The same choice as cpq (docs/quantizers/rq.md): MSE-optimal alpha, sigma = alpha / 3.
  init_alpha_sigma(*this, x, range());
}

Tensor RqQuantizer::quantize(const Tensor& x) {
  if (!is_training()) return grid_quantize(x, step(), range());  // eval: round to nearest, clamp
  RqConcrete::Setup s;
  s.range = range();
  s.temperature = spec().option_double("temperature", 1.0);
  s.straight_through = spec().option_bool("straight_through", true);
  s.map = positive_map_of(spec());
  if (bits() > 4) {
    const float sigma = sigma_values()[0], alpha = step().to_vector<float>()[0];
    const double w = std::ceil(spec().option_double("window_sigmas", 3.0) * sigma / alpha);
    s.window = static_cast<int>(std::clamp(w, 1.0, static_cast<double>(s.range.levels())));
  }
  Generator& g = *generator();
  s.gen = g;
  s.base = g.reserve(RqConcrete::counters(x.numel(), s.range));
  return CustomFunction::apply<RqConcrete>({x, parameter("alpha_raw"), parameter("sigma_raw")}, std::move(s));
}

}  // namespace lowbit
