// Weight initialisers with torch.nn.init's formulas, drawing from a lowbit Generator.
#pragma once

#include <string>
#include <utility>

#include "../core/rng.h"
#include "../core/tensor.h"

namespace lowbit::init {

enum class FanMode { fan_in, fan_out };

// (fan_in, fan_out) of a weight of rank >= 2: [out, in, k...] gives (in * prod(k), out * prod(k)).
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& w);
// torch.nn.init.calculate_gain: "linear", "conv2d", "sigmoid" 1; "tanh" 5/3; "relu" sqrt(2);
// "leaky_relu" sqrt(2 / (1 + param^2)) (param is the negative slope); "selu" 3/4.
double calculate_gain(const std::string& nonlinearity, double param = 0.01);

// Every function overwrites t in place (its identity is kept; never recorded by autograd)
// and draws from gen, which defaults to default_generator().
void uniform_(Tensor& t, double low, double high, Generator& gen = default_generator());
void normal_(Tensor& t, double mean, double std, Generator& gen = default_generator());
void zeros_(Tensor& t);
void ones_(Tensor& t);

// std = gain(nonlinearity, a) / sqrt(fan); uniform bound = sqrt(3) * std.
void kaiming_uniform_(Tensor& w, double a = 0, FanMode mode = FanMode::fan_in,
                      const std::string& nonlinearity = "leaky_relu", Generator& gen = default_generator());
void kaiming_normal_(Tensor& w, double a = 0, FanMode mode = FanMode::fan_in,
                     const std::string& nonlinearity = "leaky_relu", Generator& gen = default_generator());
// std = gain * sqrt(2 / (fan_in + fan_out)); uniform bound = sqrt(3) * std.
void xavier_uniform_(Tensor& w, double gain = 1, Generator& gen = default_generator());
void xavier_normal_(Tensor& w, double gain = 1, Generator& gen = default_generator());

// PyTorch's reset_parameters for Linear and Conv2d: kaiming_uniform_(w, a = sqrt(5)), which
// is uniform(+-1/sqrt(fan_in)), then the bias (if defined) uniform(+-1/sqrt(fan_in)).
void reset_linear_like(Tensor& weight, Tensor& bias, Generator& gen = default_generator());

}  // namespace lowbit::init
