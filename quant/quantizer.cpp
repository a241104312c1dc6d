// Quantizer base class: calibration protocol, missing-key initialisation, default export and report.
#include "quantizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/autograd.h"
#include "../core/dispatch.h"
#include "kernels/uniform.h"

namespace lowbit {

const char* role_name(QuantRole role) { return role == QuantRole::weight ? "weight" : "activation"; }

// ---- QuantSpec options ----

namespace {
const std::string* find_option(const QuantSpec& spec, const std::string& key) {
  auto it = spec.options.find(key);
  return it == spec.options.end() ? nullptr : &it->second;
}
[[noreturn]] void bad_option(const std::string& key, const std::string& text, const char* expected) {
  throw Error(detail::cat("expected ", expected, ", got '", text, "'"), "quant.options." + key);
}
}  // namespace

double QuantSpec::option_double(const std::string& key, double fallback) const {
  const std::string* text = find_option(*this, key);
  if (!text) return fallback;
  try {
    size_t used = 0;
    double v = std::stod(*text, &used);
    if (used == text->size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  bad_option(key, *text, "a finite number");
}

int64_t QuantSpec::option_int(const std::string& key, int64_t fallback) const {
  const std::string* text = find_option(*this, key);
  if (!text) return fallback;
  try {
    size_t used = 0;
    long long v = std::stoll(*text, &used);
    if (used == text->size()) return v;
  } catch (const std::exception&) {
  }
  bad_option(key, *text, "an integer");
}

bool QuantSpec::option_bool(const std::string& key, bool fallback) const {
  const std::string* text = find_option(*this, key);
  if (!text) return fallback;
  if (*text == "true" || *text == "yes" || *text == "on") return true;
  if (*text == "false" || *text == "no" || *text == "off") return false;
  bad_option(key, *text, "true or false");
}

std::string QuantSpec::option_string(const std::string& key, const std::string& fallback) const {
  const std::string* text = find_option(*this, key);
  return text ? *text : fallback;
}

// ---- IntTensor ----

Tensor IntTensor::dequantize() const {
  LOWBIT_CHECK(codes.defined() && codes.dtype() == DType::i32, "IntTensor::dequantize", "codes must be i32");
  Tensor out = Tensor::empty(codes.shape());
  // An export lives on the host (export_int() computes it there); copies make one built on a
  // device safe to read too.
  const Tensor hc = codes.to(Device::cpu());
  const int32_t* c = hc.data<int32_t>();
  float* y = out.data<float>();
  const int64_t n = codes.numel();
  if (codebook.defined()) {
    const Tensor hb = codebook.to(Device::cpu());
    const float* book = hb.data<float>();
    const int64_t size = codebook.numel();
    for (int64_t i = 0; i < n; ++i) {
      LOWBIT_CHECK(c[i] >= 0 && c[i] < size, "IntTensor::dequantize", "code ", c[i], " outside the codebook of ", size,
                   " entries");
      y[i] = book[c[i]];
    }
    return out;
  }
  LOWBIT_CHECK(scale.defined(), "IntTensor::dequantize", "neither scale nor codebook is set");
  const Tensor hs = scale.to(Device::cpu());
  const float* s = hs.data<float>();
  const int64_t channels = scale.numel();
  LOWBIT_CHECK(channels == 1 || (codes.dim() > 0 && codes.size(0) == channels), "IntTensor::dequantize", "scale of ",
               channels, " values does not match codes of shape ", shape_str(codes.shape()));
  const int64_t inner = channels == 1 ? n : n / channels;
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(c[i]) * s[channels == 1 ? 0 : i / inner];
  return out;
}

// ---- grid helpers ----

namespace {
LOWBIT_DISPATCH_STUB(GridQuantizeKernel, grid_quantize_stub, cpu::grid_quantize,
                     LOWBIT_CUDA_KERNEL(cuda::grid_quantize));
LOWBIT_DISPATCH_STUB(GridCodesKernel, grid_codes_stub, cpu::grid_codes, LOWBIT_CUDA_KERNEL(cuda::grid_codes));
LOWBIT_DISPATCH_STUB(AbsMaxKernel, abs_max_stub, cpu::abs_max, LOWBIT_CUDA_KERNEL(cuda::abs_max));
}  // namespace

Tensor grid_quantize(const Tensor& x, const Tensor& alpha, GridRange range) {
  LOWBIT_CHECK(x.dtype() == DType::f32, "grid_quantize", "expects f32 input, got ", dtype_name(x.dtype()));
  const Tensor xd = x.detach();
  Tensor out = Tensor::empty(x.shape(), DType::f32, x.device());
  grid_quantize_stub[x.device()](xd, alpha, range, out);
  return out;
}

Tensor grid_codes(const Tensor& x, const Tensor& alpha, GridRange range) {
  LOWBIT_CHECK(x.dtype() == DType::f32, "grid_codes", "expects f32 input, got ", dtype_name(x.dtype()));
  const Tensor xd = x.detach();
  Tensor out = Tensor::empty(x.shape(), DType::i32, x.device());
  grid_codes_stub[x.device()](xd, alpha, range, out);
  return out;
}

namespace {
// f(channel, |x_i|) over the slices of x along dim 0.
template <class F>
void for_each_abs(const Tensor& x, int64_t channels, const char* where, F&& f) {
  LOWBIT_CHECK(channels >= 1 && (channels == 1 || (x.dim() > 0 && x.size(0) == channels)), where, channels,
               " channels do not match a tensor of shape ", shape_str(x.shape()));
  Tensor xc = x.detach().to(Device::cpu());
  const float* p = xc.data<float>();
  const int64_t n = xc.numel(), inner = channels == 1 ? n : n / channels;
  for (int64_t i = 0; i < n; ++i) f(channels == 1 ? 0 : i / inner, std::fabs(p[i]));
}
}  // namespace

std::vector<float> abs_max(const Tensor& x, int64_t channels) {
  LOWBIT_CHECK(channels >= 1 && (channels == 1 || (x.dim() > 0 && x.size(0) == channels)), "abs_max", channels,
               " channels do not match a tensor of shape ", shape_str(x.shape()));
  LOWBIT_CHECK(x.dtype() == DType::f32, "abs_max", "expects f32 input, got ", dtype_name(x.dtype()));
  // On x's device: weight quantizers (ste_uniform) take it at every forward.
  std::vector<float> m;
  abs_max_stub[x.device()](x.detach(), channels, m);
  return m;
}

std::vector<float> abs_mean(const Tensor& x, int64_t channels) {
  std::vector<double> s(static_cast<size_t>(channels), 0.0);
  for_each_abs(x, channels, "abs_mean", [&](int64_t c, float a) { s[c] += a; });
  const double per = channels > 0 && x.numel() > 0 ? static_cast<double>(x.numel()) / channels : 1.0;
  std::vector<float> m;
  for (double v : s) m.push_back(static_cast<float>(v / per));
  return m;
}

float abs_percentile(const Tensor& x, double p) {
  LOWBIT_CHECK(p > 0 && p <= 100, "abs_percentile", "percentile must be in (0, 100], got ", p);
  std::vector<float> v;
  v.reserve(static_cast<size_t>(x.numel()));
  for_each_abs(x, 1, "abs_percentile", [&](int64_t, float a) { v.push_back(a); });
  if (v.empty()) return 0.0f;
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  const size_t k = std::min(v.size() - 1, rank == 0 ? 0 : rank - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

void check_finite(const Tensor& x, const std::string& where) {
  Tensor xc = x.to(Device::cpu());
  const float* p = xc.data<float>();
  for (int64_t i = 0, n = xc.numel(); i < n; ++i)
    LOWBIT_CHECK(std::isfinite(p[i]), where, "non-finite value ", p[i], " at element ", i);
}

// ---- Quantizer ----

Quantizer::Quantizer(QuantSpec spec, std::string type_name) : Module(std::move(type_name)), spec_(std::move(spec)) {
  LOWBIT_CHECK(spec_.bits >= 1 && spec_.bits <= 16, type_name_for_errors(), "bits must be in 1..16, got ", spec_.bits);
  LOWBIT_CHECK(spec_.role == QuantRole::weight || !spec_.per_channel, type_name_for_errors(),
               "per_channel applies to weights only");
  register_buffer("initialized", Tensor::scalar(0));
  // Activations decide their sign at calibration (act_signed: auto); the decision is state.
  if (spec_.role == QuantRole::activation) register_buffer("is_signed", Tensor::scalar(spec_.is_signed ? 1 : 0));
}

std::string Quantizer::type_name_for_errors() const { return type_name() + " (" + spec_.method + ")"; }

bool Quantizer::is_signed() const {
  if (spec_.role == QuantRole::weight) return spec_.is_signed;
  return buffer("is_signed").item() != 0;
}

bool Quantizer::initialized() const { return buffer("initialized").item() != 0; }

void Quantizer::mark_initialized(bool on) { buffer("initialized").fill_(on ? 1 : 0); }

void Quantizer::set_signed(bool on) {
  LOWBIT_CHECK(spec_.role == QuantRole::activation, type_name_for_errors(), "only activations decide their sign");
  buffer("is_signed").fill_(on ? 1 : 0);
}

void Quantizer::initialize(const Tensor& x) {
  NoGradGuard guard;
  if (spec_.role == QuantRole::activation) {
    observe(x);
    end_calibration();
    return;
  }
  check_finite(x, type_name_for_errors());
  init_from(x.detach());
  mark_initialized(true);
}

Tensor Quantizer::forward(const Tensor& x) {
  if (!initialized()) {
    if (spec_.role == QuantRole::activation && !grad_enabled()) {
      observe(x);  // a calibration pass: observe and leave x in float
      return x;
    }
    initialize(x);
  }
  return quantize(x);
}

void Quantizer::observe(const Tensor& x) {
  // A strided sample bounded per batch and in total keeps percentiles cheap; the exact
  // extremes are kept apart so max-based initialisation sees the true range.
  constexpr int64_t kPerBatch = 8192, kTotal = 1 << 16;
  Tensor xc = x.detach().to(Device::cpu());
  check_finite(xc, type_name_for_errors() + " calibration");
  const float* p = xc.data<float>();
  const int64_t n = xc.numel();
  if (n == 0) return;
  auto [lo, hi] = std::minmax_element(p, p + n);
  observed_min_ = observed_any_ ? std::min(observed_min_, *lo) : *lo;
  observed_max_ = observed_any_ ? std::max(observed_max_, *hi) : *hi;
  observed_any_ = true;
  const int64_t stride = std::max<int64_t>(1, n / kPerBatch);
  for (int64_t i = 0; i < n && static_cast<int64_t>(sample_.size()) < kTotal; i += stride) sample_.push_back(p[i]);
}

Tensor Quantizer::observed_sample() const {
  if (!observed_any_) return Tensor::empty({0});
  std::vector<float> v = sample_;
  v.push_back(observed_min_);
  v.push_back(observed_max_);
  return Tensor::from_vector(v);
}

int64_t Quantizer::calibration_batches() const {
  return spec_.role == QuantRole::activation && !initialized() ? std::max<int64_t>(1, spec_.calibration_batches) : 0;
}

void Quantizer::end_calibration() {
  if (spec_.role != QuantRole::activation || !observed_any_) return;
  NoGradGuard guard;
  if (spec_.signed_auto) set_signed(observed_min_ < 0);
  init_from(observed_sample());
  mark_initialized(true);
  sample_.clear();
  sample_.shrink_to_fit();
  observed_any_ = false;
}

std::vector<std::string> Quantizer::initialize_missing(const std::vector<std::string>& missing) {
  if (missing.empty()) return {};
  NoGradGuard guard;
  if (spec_.role == QuantRole::weight) {
    Tensor w = source();
    if (!w.defined()) return missing;  // a stand-alone weight quantizer has nothing to derive from
    init_from(w.detach());
    mark_initialized(true);
  } else {
    // Re-derived by the calibration pass the trainer runs while calibration_batches() > 0.
    mark_initialized(false);
    if (spec_.signed_auto) set_signed(spec_.is_signed);
  }
  return {};
}

IntTensor Quantizer::export_int(const Tensor& x) const {
  NoGradGuard guard;
  IntTensor out;
  out.scale = step().detach().to(Device::cpu()).clone();
  out.codes = grid_codes(x.detach().to(Device::cpu()), out.scale, range());  // an export lives on the host
  out.bits = bits();
  out.is_signed = range().qmin < 0;
  return out;
}

TensorQuantReport Quantizer::report(const Tensor* x) const {
  TensorQuantReport r;
  r.method = spec_.method;
  r.role = role_name(spec_.role);
  r.bits = bits();
  r.is_signed = is_signed();
  r.alpha = step().detach().to_vector<float>();
  r.sigma = sigma_values();
  r.gates = gate_values();
  r.qmin = range().qmin;
  if (x && x->defined()) {
    IntTensor it = export_int(*x);
    r.numel = it.codes.numel();
    if (!it.codebook.defined()) {
      GridRange g = range();
      r.qmin = g.qmin;
      r.occupancy.assign(static_cast<size_t>(g.levels()), 0);
      const int32_t* c = it.codes.data<int32_t>();
      for (int64_t i = 0; i < r.numel; ++i) {
        int64_t k = c[i] - g.qmin;
        if (k >= 0 && k < g.levels()) ++r.occupancy[static_cast<size_t>(k)];
      }
    } else {
      r.qmin = 0;
      r.occupancy.assign(static_cast<size_t>(it.codebook.numel()), 0);
      const int32_t* c = it.codes.data<int32_t>();
      for (int64_t i = 0; i < r.numel; ++i)
        if (c[i] >= 0 && c[i] < static_cast<int64_t>(r.occupancy.size())) ++r.occupancy[static_cast<size_t>(c[i])];
    }
  }
  return r;
}

}  // namespace lowbit
