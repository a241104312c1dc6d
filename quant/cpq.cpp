// cpq / srq: the multi-class STE function and the quantizer (DropBits, learned bit-widths, init).
#include "cpq.h"

#include <algorithm>
#include <cmath>

#include "../core/dispatch.h"
#include "bit_gates.h"
#include "kernels/cpq.h"

namespace lowbit {

namespace {
constexpr float kMinPositive = 1e-8f;
LOWBIT_DISPATCH_STUB(CpqForwardKernel, cpq_forward_stub, cpu::cpq_forward, LOWBIT_CUDA_KERNEL(cuda::cpq_forward));
LOWBIT_DISPATCH_STUB(CpqBackwardKernel, cpq_backward_stub, cpu::cpq_backward, LOWBIT_CUDA_KERNEL(cuda::cpq_backward));
}  // namespace

PositiveMap positive_map_of(const QuantSpec& spec) {
  const std::string m = spec.option_string("positive", "exp");
  LOWBIT_CHECK(m == "exp" || m == "softplus", "quant.options.positive", "expected exp or softplus, got '", m, "'");
  return m == "exp" ? PositiveMap::exp : PositiveMap::softplus;
}

std::vector<float> positive_values(const Tensor& raw, PositiveMap map) {
  std::vector<float> r = raw.detach().to_vector<float>();
  for (float& v : r)
    v = std::max(static_cast<float>(map == PositiveMap::exp ? std::exp(static_cast<double>(v)) : softplus(v)),
                 kMinPositive);
  return r;
}

double positive_inverse(double v, PositiveMap map) {
  LOWBIT_CHECK(v > 0 && std::isfinite(v), "positive_inverse", "needs a positive finite value, got ", v);
  return map == PositiveMap::exp ? std::log(v) : softplus_inverse(v);
}

Tensor positive_raw_gradient(const Tensor& raw, const std::vector<double>& d, PositiveMap map) {
  std::vector<float> r = raw.detach().to_vector<float>(), g(r.size());
  for (size_t i = 0; i < r.size(); ++i)
    g[i] = static_cast<float>(d[i] *
                              (map == PositiveMap::exp ? std::exp(static_cast<double>(r[i])) : sigmoid_scalar(r[i])));
  return Tensor::from_vector(g, raw.shape()).to(raw.device());
}

CpqArgs MulticlassSte::args() const {
  CpqArgs a;
  a.range = setup_.range;
  a.alpha = alpha_.data();
  a.sigma = sigma_.data();
  a.alpha_size = static_cast<int64_t>(alpha_.size());
  a.sigma_size = static_cast<int64_t>(sigma_.size());
  a.channels = std::max(a.alpha_size, a.sigma_size);
  if (has_gates_) a.mask.weight = weight_.data();
  if (!setup_.drop_bit.empty()) {
    a.mask.drop_bit = setup_.drop_bit.data();
    a.mask.tensor_mask = setup_.tensor_mask;  // the element mask goes to the kernels as a tensor
  }
  return a;
}

Tensor MulticlassSte::forward(const std::vector<Tensor>& inputs) {
  LOWBIT_CHECK(inputs.size() == 3 || inputs.size() == 4, "multiclass_ste",
               "expects {x, alpha_raw, sigma_raw[, gates]}");
  x_ = inputs[0].detach();
  LOWBIT_CHECK(x_.dtype() == DType::f32, "multiclass_ste", "expects f32 input, got ", dtype_name(x_.dtype()));
  raw_a_ = inputs[1];
  raw_s_ = inputs[2];
  alpha_ = positive_values(raw_a_, setup_.map);
  sigma_ = positive_values(raw_s_, setup_.map);
  const int64_t channels = static_cast<int64_t>(std::max(alpha_.size(), sigma_.size()));
  LOWBIT_CHECK((alpha_.size() == 1 || static_cast<int64_t>(alpha_.size()) == channels) &&
                   (sigma_.size() == 1 || static_cast<int64_t>(sigma_.size()) == channels),
               "multiclass_ste", "alpha (", alpha_.size(), ") and sigma (", sigma_.size(), ") sizes differ");
  LOWBIT_CHECK(channels == 1 || (x_.dim() > 0 && x_.size(0) == channels), "multiclass_ste", channels,
               " channels do not match x of shape ", shape_str(x_.shape()), " (per channel is along dim 0)");
  has_gates_ = inputs.size() == 4;
  if (has_gates_) {
    const std::vector<float> g = inputs[3].detach().to_vector<float>();
    gate_device_ = inputs[3].device();
    gate_count_ = static_cast<int64_t>(g.size());
    LOWBIT_CHECK(static_cast<int64_t>(setup_.levels.size()) == setup_.range.levels(), "multiclass_ste",
                 "gates need the level of every code");
    weight_.assign(setup_.levels.size(), 1.0f);
    for (size_t k = 0; k < weight_.size(); ++k) {
      const int l = setup_.levels[k];
      LOWBIT_CHECK(l - 2 < gate_count_, "multiclass_ste", "code level ", l, " has no gate (", gate_count_, " gates)");
      if (l >= 2) weight_[k] = g[static_cast<size_t>(l - 2)];
    }
  }
  LOWBIT_CHECK(!setup_.elem_mask.defined() || setup_.elem_mask.numel() == x_.numel(), "multiclass_ste",
               "element mask size differs from x");
  if (setup_.elem_mask.defined()) setup_.elem_mask = setup_.elem_mask.to(x_.device());
  Tensor y = Tensor::empty(x_.shape(), DType::f32, x_.device());
  cpq_forward_stub[x_.device()](x_, args(), setup_.elem_mask, y);
  return y;
}

std::vector<Tensor> MulticlassSte::backward(const Tensor& dy) {
  const bool want_x = needs_input_grad(0), want_a = needs_input_grad(1), want_s = needs_input_grad(2);
  const bool want_g = has_gates_ && needs_input_grad(3);
  const Tensor g = dy.to(x_.device());
  std::vector<double> da(alpha_.size()), ds(sigma_.size()), dw(want_g ? static_cast<size_t>(gate_count_) : 0);
  std::vector<int32_t> group;  // code -> its gate (level - 2); level 1 has none
  if (want_g)
    for (int l : setup_.levels) group.push_back(l - 2);
  Tensor dx = want_x ? Tensor::empty(x_.shape(), DType::f32, x_.device()) : Tensor();
  CpqGradOut out;
  out.dalpha = want_a ? da.data() : nullptr;
  out.dsigma = want_s ? ds.data() : nullptr;
  out.dweight = want_g ? dw.data() : nullptr;
  out.group = want_g ? group.data() : nullptr;
  out.groups = static_cast<int>(gate_count_);
  out.alpha_direct = setup_.alpha_direct;
  cpq_backward_stub[x_.device()](x_, g, args(), setup_.elem_mask, out, dx);
  std::vector<Tensor> grads(has_gates_ ? 4 : 3);
  grads[0] = dx;
  if (want_a) grads[1] = positive_raw_gradient(raw_a_, da, setup_.map);
  if (want_s) grads[2] = positive_raw_gradient(raw_s_, ds, setup_.map);
  if (want_g) {
    std::vector<float> dg(dw.begin(), dw.end());
    grads[3] = Tensor::from_vector(dg, {gate_count_}).to(gate_device_);
  }
  return grads;
}

std::vector<float> mse_step(const Tensor& x, GridRange range, int64_t channels) {
  const Tensor xc = x.detach().to(Device::cpu());
  const float* p = xc.data<float>();
  const int64_t n = xc.numel(), inner = channels > 0 ? n / channels : n;
  LOWBIT_CHECK(channels >= 1 && inner * channels == n, "mse_step", channels, " channels do not divide ", n,
               " elements");
  const double qabs = static_cast<double>(std::max<int64_t>(std::max(-range.qmin, range.qmax), 1));
  const float lo = static_cast<float>(range.qmin), hi = static_cast<float>(range.qmax);
  std::vector<float> out;
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t stride = std::max<int64_t>(1, inner / 65536);
    std::vector<float> v;
    float m = 0;
    for (int64_t i = 0; i < inner; ++i) m = std::max(m, std::fabs(p[c * inner + i]));
    for (int64_t i = 0; i < inner; i += stride) v.push_back(p[c * inner + i]);
    if (!(m > 0) || !std::isfinite(m)) {
      out.push_back(1.0f);
      continue;
    }
    auto err = [&](double t) {
      const float a = static_cast<float>(t * m / qabs);
      double e = 0;
      for (float xv : v) {
        const double d = xv - grid_value(xv, a, lo, hi);
        e += d * d;
      }
      return e;
    };
    constexpr int kCoarse = 80;
    double best_t = 1, best = err(1.0);
    for (int i = 1; i < kCoarse; ++i) {
      const double t = static_cast<double>(i) / kCoarse, e = err(t);
      if (e < best) best = e, best_t = t;
    }
    const double t0 = best_t;
    for (int i = -10; i <= 10; ++i) {
      const double t = t0 + i * (1.0 / kCoarse) / 10;
      if (t <= 0 || t > 1) continue;
      const double e = err(t);
      if (e < best) best = e, best_t = t;
    }
    out.push_back(std::max(static_cast<float>(best_t * m / qabs), kMinPositive));
  }
  return out;
}

CpqQuantizer::CpqQuantizer(const QuantSpec& spec) : Quantizer(spec, "CpqQuantizer") {
  const int64_t c = spec.channels();
  auto make = [&](double v) { return spec.per_channel && c > 1 ? Tensor::full({c}, v) : Tensor::scalar(v); };
  const PositiveMap map = positive_map_of(spec);
  register_parameter("alpha_raw", make(positive_inverse(1.0, map)));
  register_parameter("sigma_raw", make(positive_inverse(1.0 / 3.0, map)));
  if (spec.learn_bits.enabled) {
    LOWBIT_CHECK(spec.learn_bits.max_bits >= 2 && spec.learn_bits.max_bits <= 8, type_name_for_errors(),
                 "learn_bits.max_bits must be in 2..8, got ", spec.learn_bits.max_bits);
    register_parameter("gate_log_alpha", Tensor::full({spec.learn_bits.max_bits - 1}, spec.learn_bits.init));
  }
  if (spec.dropbits.enabled)
    LOWBIT_CHECK(grid_bits() <= 8, type_name_for_errors(), "DropBits supports up to 8 bits, got ", grid_bits());
  const std::string init = spec.option_string("init", "mse");
  LOWBIT_CHECK(init == "mse" || init == "max", "quant.options.init", "expected mse or max, got '", init, "'");
  LOWBIT_CHECK(spec.option_double("sigma_init", 1.0 / 3.0) > 0, "quant.options.sigma_init", "must be positive");
}

QuantizerCapabilities CpqQuantizer::capabilities() {
  QuantizerCapabilities caps;
  caps.learn_bits = true;
  caps.dropbits = true;
  caps.options = {"alpha_direct_grad", "sigma_init", "init", "positive"};
  caps.summary = "logistic-bin categorical, mode forward, multi-class STE backward (CPQ/SRQ), DropBits, learned bits";
  return caps;
}

int CpqQuantizer::grid_bits() const { return spec().learn_bits.enabled ? spec().learn_bits.max_bits : spec().bits; }

int CpqQuantizer::bits() const {
  return spec().learn_bits.enabled ? open_bits(parameter("gate_log_alpha")) : spec().bits;
}

Tensor CpqQuantizer::step() const {
  std::vector<float> a = positive_values(parameter("alpha_raw"), positive_map_of(spec()));
  // Learned bits in resolution mode: the L-bit grid is every 2^(B-L)-th point of the B-bit one.
  if (spec().learn_bits.enabled && spec().dropbits.mode == DropBitsSpec::Mode::resolution) {
    const float f = std::ldexp(1.0f, grid_bits() - bits());
    for (float& v : a) v *= f;
  }
  return Tensor::from_vector(a, parameter("alpha_raw").shape());
}

std::vector<float> CpqQuantizer::sigma_values() const {
  return positive_values(parameter("sigma_raw"), positive_map_of(spec()));
}

std::vector<float> CpqQuantizer::gate_values() const {
  return spec().learn_bits.enabled ? eval_gates(parameter("gate_log_alpha")) : std::vector<float>{};
}

Tensor CpqQuantizer::regularizer() {
  if (!spec().learn_bits.enabled) return Tensor();
  // cost of a level = the number of weights of the layer (QUANTIZERS.md, learned bit-widths)
  const double cost = spec().shape.empty() ? 1.0 : static_cast<double>(numel(spec().shape));
  return l0_penalty(parameter("gate_log_alpha"), spec().learn_bits.lambda * cost);
}

void CpqQuantizer::init_from(const Tensor& x) {
  init_alpha_sigma(*this, x, grid_range(grid_bits(), is_signed(), spec().grid));
}

const DropBitsSampler& CpqQuantizer::sampler() {
  if (!sampler_ || sampler_signed_ != is_signed()) {
    sampler_.emplace(spec().dropbits, grid_bits(), is_signed(), spec().grid);
    sampler_signed_ = is_signed();
  }
  return *sampler_;
}

Tensor CpqQuantizer::quantize(const Tensor& x) {
  if (!is_training() && spec().learn_bits.enabled) return grid_quantize(x, step(), range());
  MulticlassSte::Setup s;
  s.range = grid_range(grid_bits(), is_signed(), spec().grid);
  s.alpha_direct = spec().option_bool("alpha_direct_grad", true);
  s.map = positive_map_of(spec());
  std::vector<Tensor> inputs = {x, parameter("alpha_raw"), parameter("sigma_raw")};
  if (is_training() && spec().dropbits.enabled && spec().dropbits.p > 0) {
    const DropBitsSampler& d = sampler();
    s.drop_bit = d.drop_bit();
    if (spec().dropbits.granularity == DropBitsSpec::Granularity::per_element) {
      s.elem_mask = d.sample_elements(*generator(), x.shape(), x.device());
    } else {
      s.tensor_mask = d.sample_tensor(*generator());
    }
  }
  if (spec().learn_bits.enabled) {
    s.levels = code_levels(grid_bits(), is_signed(), spec().grid, spec().dropbits.mode);
    inputs.push_back(nested_gates(parameter("gate_log_alpha"), is_training(), *generator()));
  }
  return CustomFunction::apply<MulticlassSte>(inputs, std::move(s));
}

void init_alpha_sigma(Quantizer& q, const Tensor& x, GridRange r) {
  const QuantSpec& spec = q.spec();
  const int64_t channels = q.parameter("alpha_raw").numel();
  std::vector<float> a;
  if (spec.option_string("init", "mse") == "max") {
    const float qabs = static_cast<float>(std::max<int64_t>(std::max(-r.qmin, r.qmax), 1));
    a = abs_max(x, channels);
    for (float& v : a) v = std::max(v / qabs, kMinPositive);
  } else {
    a = mse_step(x, r, channels);
  }
  const double ratio = spec.option_double("sigma_init", 1.0 / 3.0);
  const PositiveMap map = positive_map_of(spec);
  std::vector<float> ra, rs;
  for (float v : a) {
    ra.push_back(static_cast<float>(positive_inverse(v, map)));
    rs.push_back(static_cast<float>(positive_inverse(std::max(v * ratio, 1e-8), map)));
  }
  Tensor pa = q.parameter("alpha_raw"), ps = q.parameter("sigma_raw");
  pa.copy_(Tensor::from_vector(ra, pa.shape()).to(pa.device()));
  ps.copy_(Tensor::from_vector(rs, ps.shape()).to(ps.device()));
}

}  // namespace lowbit
