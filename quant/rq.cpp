// rq: the concrete relaxation over the logistic-bin categorical (forward sample, backward
// gradient), one fused pass per tensor, and the quantizer.
#include "rq.h"

#include <algorithm>
#include <cmath>

#include "../core/parallel.h"
#include "cpq.h"
#include "cpq_kernel.h"

namespace lowbit {

namespace {
constexpr int64_t kItem = 4096;  // elements per reduction block (fixed: independent of threads)
constexpr float kTiny = 1e-30f;
constexpr int kMaxLevels = 256;
}  // namespace

void RqConcrete::run(const float* dy, float* y, float* dx, std::vector<double>* da, std::vector<double>* ds) const {
  const int64_t n = x_.numel();
  const int64_t C = static_cast<int64_t>(std::max(alpha_.size(), sigma_.size()));
  const int64_t inner = n / C;
  const GridRange r = s_.range;
  const int levels = static_cast<int>(r.levels());
  const uint64_t nb = static_cast<uint64_t>((levels + 3) / 4);
  const float qmin = static_cast<float>(r.qmin), lam = static_cast<float>(s_.temperature);
  const float* px = x_.data<float>();
  struct Item {
    int64_t c, b, e;
  };
  std::vector<Item> items;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t b = 0; b < inner; b += kItem)
      items.push_back({c, c * inner + b, c * inner + std::min(b + kItem, inner)});
  std::vector<double> part(items.size() * 2, 0.0);
  parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t ib, int64_t ie) {
    float rr[kMaxLevels], pp[kMaxLevels + 1], av[kMaxLevels];
    for (int64_t it = ib; it < ie; ++it) {
      const int64_t c = items[it].c;
      const float alpha = alpha_[alpha_.size() == 1 ? 0 : c], sigma = sigma_[sigma_.size() == 1 ? 0 : c];
      const float s = sigma / alpha, inv_s = alpha / sigma;
      double pa = 0, ps = 0;
      for (int64_t i = items[it].b; i < items[it].e; ++i) {
        const float u = px[i] / alpha, z = u - qmin;
        const float cn = std::min(std::max(std::nearbyint(u), qmin), static_cast<float>(r.qmax));
        const int kc = std::isnan(cn) ? 0 : static_cast<int>(cn - qmin);
        const int k0 = s_.window > 0 ? std::max(0, kc - s_.window) : 0;
        const int k1 = s_.window > 0 ? std::min(levels - 1, kc + s_.window) : levels - 1;
        const float R = bin_masses(z, inv_s, k0, k1, rr, pp);
        if (!(R > kTiny)) {  // every mass underflowed: the sample is the nearest point, no gradient
          if (y) y[i] = std::isnan(u) ? u : cn * alpha;
          if (dx) dx[i] = 0;
          if (dy) pa += static_cast<double>(dy[i] * cn);
          continue;
        }
        float amax = -INFINITY;
        int khard = kc;
        PhiloxBlock blk{};
        int64_t blk_id = -1;
        for (int k = k0; k <= k1; ++k) {
          if (k / 4 != blk_id) {
            blk_id = k / 4;
            blk = s_.gen.block(s_.base + static_cast<uint64_t>(i) * nb + static_cast<uint64_t>(blk_id));
          }
          // U in (0, 1) in double: in float, (2^24 - 1 + 0.5) / 2^24 rounds to 1, and log(-log 1)
          // = -inf made a = +inf and the concrete sample NaN (about once per 2^24 draws).
          const double U = (static_cast<double>(blk[static_cast<size_t>(k % 4)] >> 8) + 0.5) * (1.0 / 16777216.0);
          const float pi = rr[k - k0] / R;
          const float a = (pi > kTiny ? std::log(pi) : std::log(kTiny)) - static_cast<float>(std::log(-std::log(U)));
          av[k - k0] = a;
          if (a > amax) amax = a, khard = k;
        }
        float zs = 0, xs = 0, zc = 0;
        for (int k = k0; k <= k1; ++k) zs += (av[k - k0] = std::exp((av[k - k0] - amax) / lam));
        for (int k = k0; k <= k1; ++k) {
          av[k - k0] /= zs;  // z_k
          zc += av[k - k0] * (static_cast<float>(k) + qmin);
        }
        xs = alpha * zc;
        if (y) y[i] = s_.straight_through ? (static_cast<float>(khard) + qmin) * alpha : xs;
        if (!dy) continue;
        // rho_j = gamma_{j-1}/r_{j-1} - gamma_j/r_j, gamma_k = dy z_k (alpha c_k - x_soft)/lambda
        float s0 = 0, s1 = 0, prev = 0;
        for (int j = k0; j <= k1 + 1; ++j) {
          float cur = 0;
          if (j <= k1) {
            const float rk = rr[j - k0];
            const float g = dy[i] * av[j - k0] * (alpha * (static_cast<float>(j) + qmin) - xs) / lam;
            cur = rk > kTiny * R ? g / rk : 0.0f;
          }
          const float rho = prev - cur, d = static_cast<float>(j) - 0.5f - z;
          s0 += rho * pp[j - k0];
          s1 += rho * pp[j - k0] * d;
          prev = cur;
        }
        if (dx) dx[i] = -s0 / sigma;
        pa += static_cast<double>((s1 + u * s0) / sigma + dy[i] * zc);
        ps += static_cast<double>(-s1 / (s * sigma));
      }
      part[2 * static_cast<size_t>(it)] = pa;
      part[2 * static_cast<size_t>(it) + 1] = ps;
    }
  });
  for (size_t it = 0; it < items.size(); ++it) {
    if (da) (*da)[da->size() == 1 ? 0 : static_cast<size_t>(items[it].c)] += part[2 * it];
    if (ds) (*ds)[ds->size() == 1 ? 0 : static_cast<size_t>(items[it].c)] += part[2 * it + 1];
  }
}

Tensor RqConcrete::forward(const std::vector<Tensor>& inputs) {
  LOWBIT_CHECK(inputs.size() == 3, "rq_concrete", "expects {x, alpha_raw, sigma_raw}");
  x_ = inputs[0].to(Device::cpu());
  LOWBIT_CHECK(x_.dtype() == DType::f32, "rq_concrete", "expects f32 input, got ", dtype_name(x_.dtype()));
  LOWBIT_CHECK(s_.range.levels() <= kMaxLevels, "rq_concrete", "supports up to 8 bits");
  LOWBIT_CHECK(s_.temperature > 0, "rq_concrete", "temperature must be positive, got ", s_.temperature);
  raw_a_ = inputs[1];
  raw_s_ = inputs[2];
  alpha_ = positive_values(raw_a_, s_.map);
  sigma_ = positive_values(raw_s_, s_.map);
  const int64_t C = static_cast<int64_t>(std::max(alpha_.size(), sigma_.size()));
  LOWBIT_CHECK(C == 1 || (x_.dim() > 0 && x_.size(0) == C), "rq_concrete", C, " channels do not match x of shape ",
               shape_str(x_.shape()));
  Tensor y = Tensor::empty(x_.shape());
  run(nullptr, y.data<float>(), nullptr, nullptr, nullptr);
  return y;
}

std::vector<Tensor> RqConcrete::backward(const Tensor& dy) {
  Tensor g = dy.to(Device::cpu());
  std::vector<double> da(alpha_.size(), 0.0), ds(sigma_.size(), 0.0);
  Tensor dx = Tensor::empty(x_.shape());
  run(g.data<float>(), nullptr, dx.data<float>(), &da, &ds);
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
