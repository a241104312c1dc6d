// Nested hard-concrete bit gates and the L0 penalty, forward and backward side by side.
#include "bit_gates.h"

#include <algorithm>
#include <cmath>

#include "../core/error.h"

namespace lowbit {

namespace {
double sig(double t) { return t >= 0 ? 1 / (1 + std::exp(-t)) : std::exp(t) / (1 + std::exp(t)); }
constexpr double kSpan = HardConcrete::zeta - HardConcrete::gamma;
// Sig(log a) at or below this closes the eval gate exactly: -gamma / (zeta - gamma) = 1/12.
constexpr double kClosed = 1.0 / 12.0, kOpen = 11.0 / 12.0;

std::vector<double> values_of(const Tensor& t) {
  std::vector<float> v = t.detach().to_vector<float>();
  return std::vector<double>(v.begin(), v.end());
}
}  // namespace

double HardConcrete::sample(double log_a, double u) {
  const double s = sig((std::log(u) - std::log1p(-u) + log_a) / beta);
  return std::clamp(s * kSpan + gamma, 0.0, 1.0);
}

double HardConcrete::eval(double log_a) {
  const double s = sig(log_a);
  if (s <= kClosed) return 0.0;
  if (s >= kOpen) return 1.0;
  return std::clamp(s * kSpan + gamma, 0.0, 1.0);
}

double HardConcrete::p_open(double log_a) { return sig(log_a - beta * std::log(-gamma / zeta)); }

Tensor nested_gates(const Tensor& log_a, bool training, Generator& gen) {
  LOWBIT_CHECK(log_a.dim() == 1, "nested_gates", "log_a must be 1-d, got shape ", shape_str(log_a.shape()));
  const std::vector<double> la = values_of(log_a);
  const size_t L = la.size();
  std::vector<double> z(L), dz(L);  // gates and dz/dlog_a
  const uint64_t base = training ? gen.reserve(L) : 0;
  for (size_t l = 0; l < L; ++l) {
    double s, pre;
    if (training) {
      // u in (0, 1): 24-bit uniform shifted off 0
      const double u = (static_cast<double>(gen.block(base + l)[0] >> 8) + 0.5) / 16777216.0;
      s = sig((std::log(u) - std::log1p(-u) + la[l]) / HardConcrete::beta);
      pre = s * kSpan + HardConcrete::gamma;
      z[l] = std::clamp(pre, 0.0, 1.0);
      dz[l] = (pre > 0 && pre < 1) ? kSpan * s * (1 - s) / HardConcrete::beta : 0.0;
    } else {
      s = sig(la[l]);
      z[l] = HardConcrete::eval(la[l]);
      dz[l] = (z[l] > 0 && z[l] < 1) ? kSpan * s * (1 - s) : 0.0;
    }
  }
  std::vector<float> out(L);
  double prod = 1;
  for (size_t l = 0; l < L; ++l) out[l] = static_cast<float>(prod *= z[l]);
  // Tiny: computed on the host, results on log_a's device.
  const Device device = log_a.device();
  Tensor y = Tensor::from_vector(out, {static_cast<int64_t>(L)}).to(device);
  return record("nested_gates", y, {log_a}, [z, dz, device](const Tensor& dy, Grads& g) {
    const std::vector<float> gyv = dy.to_vector<float>();
    const float* gy = gyv.data();
    const size_t n = z.size();
    std::vector<float> gl(n, 0.0f);
    for (size_t k = 0; k < n; ++k) {
      double acc = 0;
      for (size_t l = k; l < n; ++l) {
        double p = 1;  // prod over j <= l, j != k
        for (size_t j = 0; j <= l; ++j)
          if (j != k) p *= z[j];
        acc += gy[l] * p;
      }
      gl[k] = static_cast<float>(acc * dz[k]);
    }
    g.set(0, Tensor::from_vector(gl, {static_cast<int64_t>(n)}).to(device));
  });
}

Tensor l0_penalty(const Tensor& log_a, double weight) {
  const std::vector<double> la = values_of(log_a);
  double total = 0;
  std::vector<float> grad(la.size());
  for (size_t l = 0; l < la.size(); ++l) {
    const double p = HardConcrete::p_open(la[l]);
    total += p;
    grad[l] = static_cast<float>(weight * p * (1 - p));
  }
  const Device device = log_a.device();
  Tensor y = Tensor::scalar(weight * total).to(device);
  return record("l0_penalty", y, {log_a}, [grad, shape = log_a.shape(), device](const Tensor& dy, Grads& g) {
    std::vector<float> v = grad;
    const float s = static_cast<float>(dy.item());
    for (float& x : v) x *= s;
    g.set(0, Tensor::from_vector(v, shape).to(device));
  });
}

std::vector<float> eval_gates(const Tensor& log_a) {
  const std::vector<double> la = values_of(log_a);
  std::vector<float> out;
  double prod = 1;
  for (double v : la) out.push_back(static_cast<float>(prod *= HardConcrete::eval(v)));
  return out;
}

int open_bits(const Tensor& log_a) {
  int bits = 1;
  for (float g : eval_gates(log_a))
    if (g > 0) ++bits;
  return bits;
}

}  // namespace lowbit
