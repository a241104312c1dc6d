// Weight initialisers: fans, gains and the kaiming/xavier families.
#include "init.h"

#include <cmath>

#include "../core/autograd.h"

namespace lowbit::init {

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& w) {
  LOWBIT_CHECK(w.dim() >= 2, "init::fan_in_and_fan_out", "needs a weight of rank >= 2, got ", shape_str(w.shape()));
  int64_t receptive = 1;
  for (int64_t i = 2; i < w.dim(); ++i) receptive *= w.size(i);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

double calculate_gain(const std::string& nonlinearity, double param) {
  if (nonlinearity == "linear" || nonlinearity == "conv1d" || nonlinearity == "conv2d" ||
      nonlinearity == "conv3d" || nonlinearity == "sigmoid")
    return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nonlinearity == "selu") return 0.75;
  throw Error("unknown nonlinearity '" + nonlinearity + "'", "init::calculate_gain",
              "use linear, conv2d, sigmoid, tanh, relu, leaky_relu or selu");
}

void uniform_(Tensor& t, double low, double high, Generator& gen) {
  NoGradGuard no_grad;
  t.copy_(Tensor::rand(t.shape(), gen, low, high).to(t.device()));
}

void normal_(Tensor& t, double mean, double std, Generator& gen) {
  NoGradGuard no_grad;
  t.copy_(Tensor::randn(t.shape(), gen, mean, std).to(t.device()));
}

void zeros_(Tensor& t) { t.fill_(0); }
void ones_(Tensor& t) { t.fill_(1); }

namespace {
double kaiming_std(const Tensor& w, double a, FanMode mode, const std::string& nonlinearity) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(w);
  int64_t fan = mode == FanMode::fan_in ? fan_in : fan_out;
  LOWBIT_CHECK(fan > 0, "init::kaiming", "zero fan in weight of shape ", shape_str(w.shape()));
  return calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
}
double xavier_std(const Tensor& w, double gain) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(w);
  LOWBIT_CHECK(fan_in + fan_out > 0, "init::xavier", "zero fans in weight of shape ", shape_str(w.shape()));
  return gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
}
}  // namespace

void kaiming_uniform_(Tensor& w, double a, FanMode mode, const std::string& nonlinearity, Generator& gen) {
  double bound = std::sqrt(3.0) * kaiming_std(w, a, mode, nonlinearity);
  uniform_(w, -bound, bound, gen);
}

void kaiming_normal_(Tensor& w, double a, FanMode mode, const std::string& nonlinearity, Generator& gen) {
  normal_(w, 0, kaiming_std(w, a, mode, nonlinearity), gen);
}

void xavier_uniform_(Tensor& w, double gain, Generator& gen) {
  double bound = std::sqrt(3.0) * xavier_std(w, gain);
  uniform_(w, -bound, bound, gen);
}

void xavier_normal_(Tensor& w, double gain, Generator& gen) { normal_(w, 0, xavier_std(w, gain), gen); }

void reset_linear_like(Tensor& weight, Tensor& bias, Generator& gen) {
  kaiming_uniform_(weight, std::sqrt(5.0), FanMode::fan_in, "leaky_relu", gen);
  if (bias.defined()) {
    int64_t fan_in = fan_in_and_fan_out(weight).first;
    double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    uniform_(bias, -bound, bound, gen);
  }
}

}  // namespace lowbit::init
