// Layer tests: forward against the core ops, BatchNorm/Dropout modes, init statistics, a tiny MLP.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/ops/batch_norm.h"
#include "core/ops/dropout.h"
#include "core/ops/elementwise.h"
#include "core/ops/linalg.h"
#include "core/ops/loss.h"
#include "core/ops/pool.h"
#include "core/ops/reduce.h"
#include "layers/activation.h"
#include "layers/basic_block.h"
#include "layers/dropout.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/pooling.h"

using namespace lowbit;

namespace {
bool same_values(const Tensor& a, const Tensor& b, double tol = 0) {
  if (a.shape() != b.shape()) return false;
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i)
    if (std::abs(x[i] - y[i]) > tol) return false;
  return true;
}
}  // namespace

TEST_CASE("Linear and Conv2d forward equal the core ops and have PyTorch's layouts") {
  Generator gen(1);
  Linear lin(6, 4, true, gen);
  REQUIRE(lin.weight().shape() == Shape{4, 6});
  REQUIRE(lin.bias().shape() == Shape{4});
  Tensor x = Tensor::randn({3, 6}, gen);
  REQUIRE(same_values(lin.forward(x), linear(x, lin.weight(), lin.bias())));
  Linear nob(6, 4, false, gen);
  REQUIRE_FALSE(nob.bias().defined());
  REQUIRE(nob.state_dict().size() == 1);
  REQUIRE(same_values(nob.forward(x), linear(x, nob.weight())));

  Conv2dOptions opt;
  opt.stride = {2, 1};
  opt.padding = {1, 0};
  opt.groups = 2;
  Conv2d conv(4, 6, {3, 2}, opt, true, gen);
  REQUIRE(conv.weight().shape() == Shape{6, 2, 3, 2});
  Tensor xi = Tensor::randn({2, 4, 7, 5}, gen);
  Tensor y = conv.forward(xi);
  REQUIRE(y.shape() == Shape{2, 6, 4, 4});
  REQUIRE(same_values(y, conv2d(xi, conv.weight(), conv.bias(), opt)));
  REQUIRE_THROWS_AS(Conv2d(3, 6, {3, 3}, opt), Error);  // 3 channels, 2 groups
}

TEST_CASE("activations, Flatten, Identity and pooling wrappers") {
  Generator gen(2);
  Tensor x = Tensor::randn({2, 3, 6, 6}, gen, 0, 5);
  REQUIRE(same_values(ReLU().forward(x), relu(x)));
  Tensor r6 = ReLU6().forward(x);
  auto xv = x.to_vector<float>(), rv = r6.to_vector<float>();
  for (size_t i = 0; i < xv.size(); ++i) REQUIRE(rv[i] == std::min(std::max(xv[i], 0.0f), 6.0f));
  REQUIRE(Identity().forward(x).is_same(x));
  REQUIRE(Flatten().forward(x).shape() == Shape{2, 108});
  REQUIRE(Flatten(0, 1).forward(x).shape() == Shape{6, 6, 6});
  auto po = Pool2dOptions::square(3, 2, 1);
  REQUIRE(same_values(MaxPool2d(po).forward(x), max_pool2d(x, po)));
  REQUIRE(same_values(AvgPool2d(po).forward(x), avg_pool2d(x, po)));
  Tensor g = AdaptiveAvgPool2d(1, 1).forward(x);
  REQUIRE(g.shape() == Shape{2, 3, 1, 1});
  REQUIRE(same_values(g, global_avg_pool2d(x), 1e-5));
  REQUIRE(AdaptiveAvgPool2d(4, 3).forward(x).shape() == Shape{2, 3, 4, 3});
}

TEST_CASE("BatchNorm2d uses batch stats in training and running stats in eval") {
  Generator gen(3);
  BatchNorm2d bn(3, 1e-5, 0.1);
  Tensor x = Tensor::randn({4, 3, 5, 5}, gen, 2.0, 3.0);
  bn.weight().fill_(1.5);
  bn.bias().fill_(-0.5);

  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  BatchNormOptions o;
  o.training = true;
  o.momentum = 0.1;
  Tensor expect = batch_norm(x, bn.weight(), bn.bias(), rm, rv, o);
  Tensor y = bn.forward(x);
  REQUIRE(same_values(y, expect, 1e-6));
  REQUIRE(same_values(bn.running_mean(), rm, 1e-6));
  REQUIRE(same_values(bn.running_var(), rv, 1e-6));
  REQUIRE(bn.num_batches_tracked().item() == 1);
  bn.forward(x);
  REQUIRE(bn.num_batches_tracked().item() == 2);

  bn.eval();
  Tensor before = bn.running_mean().clone();
  Tensor ye = bn.forward(x);
  REQUIRE(bn.num_batches_tracked().item() == 2);
  REQUIRE(same_values(bn.running_mean(), before));
  // eval: (x - running_mean) / sqrt(running_var + eps) * w + b, checked on one element
  auto m = bn.running_mean().to_vector<double>(), v = bn.running_var().to_vector<double>();
  double want = (x.at({1, 2, 3, 4}) - m[2]) / std::sqrt(v[2] + 1e-5) * 1.5 - 0.5;
  REQUIRE(ye.at({1, 2, 3, 4}) == Approx(want).epsilon(1e-5));
  REQUIRE_FALSE(same_values(ye, y, 1e-3));
  REQUIRE_THROWS_AS(bn.forward(Tensor::ones({4, 3})), Error);
  REQUIRE_THROWS_AS(bn.forward(Tensor::ones({4, 2, 3, 3})), Error);
}

TEST_CASE("BatchNorm1d variants: cumulative momentum, no affine, no running stats") {
  Generator gen(4);
  Tensor a = Tensor::randn({8, 2}, gen), b = Tensor::randn({8, 2}, gen, 1.0, 2.0);
  BatchNorm1d cum(2, 1e-5, std::nullopt);
  cum.forward(a);
  cum.forward(b);
  // momentum None: the running mean is the plain average of the batch means
  Tensor want = div(add(mean(a, {0}), mean(b, {0})), 2.0);
  REQUIRE(same_values(cum.running_mean(), want, 1e-5));

  BatchNorm1d plain(2, 1e-5, 0.1, false, false);
  REQUIRE(plain.state_dict().empty());
  plain.eval();  // no running stats: batch statistics even in eval
  Tensor y = plain.forward(a);
  REQUIRE(same_values(mean(y, {0}), Tensor::zeros({2}), 1e-5));
  REQUIRE(BatchNorm1d(2).forward(Tensor::randn({4, 2, 3}, gen)).shape() == Shape{4, 2, 3});
}

TEST_CASE("Dropout drops in training only, from its own generator") {
  Tensor x = Tensor::ones({1000});
  Dropout d(0.3);
  d.set_generator(Generator(5));
  Tensor y = d.forward(x);
  Generator ref(5);
  REQUIRE(same_values(y, dropout(x, 0.3, true, ref)));
  int zeros = 0;
  for (float v : y.to_vector<float>()) zeros += v == 0.0f;
  REQUIRE(zeros > 220);
  REQUIRE(zeros < 380);
  REQUIRE(d.generator()->offset() > 0);
  d.eval();
  REQUIRE(same_values(d.forward(x), x));
  REQUIRE_THROWS_AS(Dropout(1.5), Error);
}

TEST_CASE("default init follows PyTorch's bounds") {
  Generator gen(6);
  Linear lin(50, 40, true, gen);
  double bound = 1.0 / std::sqrt(50.0);  // kaiming_uniform(a = sqrt(5)) = uniform(+-1/sqrt(fan_in))
  auto w = lin.weight().to_vector<double>();
  double mx = 0;
  for (double v : w) mx = std::max(mx, std::abs(v));
  REQUIRE(mx <= bound);
  REQUIRE(mx > 0.95 * bound);
  for (double v : lin.bias().to_vector<double>()) REQUIRE(std::abs(v) <= bound);

  Conv2d conv(4, 8, {3, 3}, Conv2dOptions{}, true, gen);
  double cb = 1.0 / std::sqrt(36.0);
  for (double v : conv.weight().to_vector<double>()) REQUIRE(std::abs(v) <= cb);
  for (double v : conv.bias().to_vector<double>()) REQUIRE(std::abs(v) <= cb);

  Generator g1(11), g2(11);
  REQUIRE(same_values(Linear(5, 3, true, g1).weight(), Linear(5, 3, true, g2).weight()));
}

TEST_CASE("kaiming and xavier initialisers: bounds and statistics") {
  Generator gen(8);
  Tensor w = Tensor::empty({256, 64, 3, 3});  // fan_in 576, fan_out 2304
  const double fan_in = 576, fan_out = 2304;
  Tensor ident = w;

  auto check_uniform = [&](double bound) {
    auto v = w.to_vector<double>();
    double mx = 0, s2 = 0;
    for (double e : v) mx = std::max(mx, std::abs(e)), s2 += e * e;
    REQUIRE(mx <= bound);
    REQUIRE(mx > 0.99 * bound);
    REQUIRE(std::sqrt(s2 / v.size()) == Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  };
  auto check_normal = [&](double std) {
    auto v = w.to_vector<double>();
    double s = 0, s2 = 0;
    for (double e : v) s += e, s2 += e * e;
    REQUIRE(std::abs(s / v.size()) < 0.02 * std);
    REQUIRE(std::sqrt(s2 / v.size()) == Approx(std).epsilon(0.02));
  };

  double a = std::sqrt(5.0);
  init::kaiming_uniform_(w, a, init::FanMode::fan_in, "leaky_relu", gen);
  check_uniform(std::sqrt(6.0 / ((1 + a * a) * fan_in)));
  init::kaiming_uniform_(w, 0, init::FanMode::fan_out, "relu", gen);
  check_uniform(std::sqrt(6.0 / fan_out));
  init::kaiming_normal_(w, 0, init::FanMode::fan_out, "relu", gen);
  check_normal(std::sqrt(2.0 / fan_out));
  init::xavier_uniform_(w, 1.0, gen);
  check_uniform(std::sqrt(6.0 / (fan_in + fan_out)));
  init::xavier_normal_(w, 2.0, gen);
  check_normal(2.0 * std::sqrt(2.0 / (fan_in + fan_out)));
  REQUIRE(w.is_same(ident));

  REQUIRE(init::calculate_gain("tanh") == Approx(5.0 / 3.0));
  REQUIRE(init::calculate_gain("leaky_relu", 0.2) == Approx(std::sqrt(2.0 / 1.04)));
  REQUIRE_THROWS_AS(init::calculate_gain("swish"), Error);
  Tensor v1 = Tensor::empty({4});
  REQUIRE_THROWS_AS(init::kaiming_uniform_(v1), Error);
  REQUIRE(init::fan_in_and_fan_out(Tensor::empty({3, 5})) == std::pair<int64_t, int64_t>{5, 3});
}

TEST_CASE("BasicBlock forward: shapes, values and both shortcut options") {
  Generator gen(9);
  Tensor x = Tensor::randn({2, 4, 8, 8}, gen);
  BasicBlock same(4, 4, 1, ShortcutOption::A, gen);
  Tensor y = same.forward(x);
  REQUIRE(y.shape() == Shape{2, 4, 8, 8});
  Tensor ref = relu(add(same.bn2->forward(same.conv2->forward(relu(same.bn1->forward(same.conv1->forward(x))))), x));
  REQUIRE(same_values(y, ref, 1e-5));

  BasicBlock a(4, 8, 2, ShortcutOption::A, gen);
  a.eval();
  REQUIRE(a.forward(x).shape() == Shape{2, 8, 4, 4});
  Tensor sc = a.shortcut->forward(x);
  REQUIRE(sc.shape() == Shape{2, 8, 4, 4});
  REQUIRE(sc.at({1, 0, 1, 1}) == 0.0);
  REQUIRE(sc.at({1, 2, 1, 3}) == x.at({1, 0, 2, 6}));
  REQUIRE(sc.at({0, 5, 3, 2}) == x.at({0, 3, 6, 4}));
  REQUIRE(sc.at({0, 7, 0, 0}) == 0.0);

  BasicBlock b(4, 8, 2, ShortcutOption::B, gen);
  Tensor yb = b.forward(x);
  REQUIRE(yb.shape() == Shape{2, 8, 4, 4});
  sum(yb).backward();
  for (const auto& [n, p] : b.named_parameters()) {
    INFO(n);
    REQUIRE(p.grad().defined());
  }
}

TEST_CASE("a tiny MLP trained with manual SGD lowers its loss") {
  manual_seed(123);
  Generator gen(10);
  // Two classes split by a circle: not linearly separable, so the hidden layer matters.
  const int64_t n = 128;
  Tensor x = Tensor::rand({n, 2}, gen, -1.0, 1.0);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    double a = x.at({i, 0}), b = x.at({i, 1});
    labels[i] = a * a + b * b < 0.5 ? 1 : 0;
  }
  Tensor target = Tensor::from_vector(labels, {n});
  Sequential net;
  net.push_back(std::make_shared<Linear>(2, 16, true, gen));
  net.push_back(std::make_shared<ReLU>());
  net.push_back(std::make_shared<Linear>(16, 2, true, gen));
  std::vector<Tensor> params = net.parameters();

  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    net.zero_grad();
    Tensor loss = cross_entropy(net.forward(x), target);
    loss.backward();
    if (step == 0) first = loss.item();
    last = loss.item();
    NoGradGuard no_grad;
    for (auto& p : params) p.copy_(sub(p, mul(p.grad(), 0.5)));
  }
  INFO("first " << first << " last " << last);
  REQUIRE(last < 0.6 * first);
  // the parameters are still the module's own tensors
  REQUIRE(net.parameters()[0].is_same(params[0]));
}
