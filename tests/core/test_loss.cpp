// Losses: cross_entropy (label smoothing, ignore_index, reductions, [N, C, d...] shapes),
// nll_loss and mse_loss against hand-computed numbers and naive loops; gradients; errors.
#include <cmath>

#include <catch2/catch.hpp>

#include "core/ops/loss.h"
#include "core/ops/softmax.h"
#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {

// Naive per-sample cross-entropy in double for scores [N, C, inner...] (flattened inner),
// following the definition: -(1 - eps) log p[t] - eps * mean_c log p[c].
std::vector<double> naive_cross_entropy(const Tensor& x, const Tensor& t, double eps, int64_t ignore) {
  const Shape& s = x.shape();
  const int64_t n = s[0], c = s[1], inner = x.numel() / (n * c);
  std::vector<double> xv = x.to_vector<double>();
  std::vector<int64_t> tv = t.to_vector<int64_t>();
  std::vector<double> loss(static_cast<size_t>(n * inner), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < inner; ++k) {
      const int64_t target = tv[static_cast<size_t>(i * inner + k)];
      if (target == ignore) continue;
      auto v = [&](int64_t j) { return xv[static_cast<size_t>((i * c + j) * inner + k)]; };
      double z = 0;
      for (int64_t j = 0; j < c; ++j) z += std::exp(v(j));
      double mean_logp = 0;
      for (int64_t j = 0; j < c; ++j) mean_logp += (v(j) - std::log(z)) / static_cast<double>(c);
      loss[static_cast<size_t>(i * inner + k)] = -(1 - eps) * (v(target) - std::log(z)) - eps * mean_logp;
    }
  return loss;
}

void require_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(want[i]).margin(tol).epsilon(tol));
  }
}

Tensor example_logits() {
  return Tensor::from_vector<float>({1, 2, 0.5f, 0.1f, -1, 3, 2, 2, 2, 0, 1, -2}, {4, 3});
}
Tensor example_target() { return Tensor::from_vector<int64_t>({1, 2, -100, 0}, {4}); }

}  // namespace

TEST_CASE("cross_entropy: a small example against hand-computed values") {
  // Row 0: log(e^1 + e^2 + e^0.5) - 2 = 0.4643687841; row 2 is ignored; mean divides by 3.
  Tensor x = example_logits(), t = example_target();
  require_close(cross_entropy(x, t, {0, Reduction::none}).to_vector<double>(),
                {0.4643687841, 0.0707742190, 0.0, 1.3490122168}, 1e-6);
  REQUIRE(cross_entropy(x, t).item() == Approx(0.6280517399).epsilon(1e-6));
  REQUIRE(cross_entropy(x, t, {0, Reduction::sum}).item() == Approx(1.8841552198).epsilon(1e-6));
  // Label smoothing 0.1: (1 - 0.1) * nll + 0.1 * mean over classes of -log p.
  require_close(cross_entropy(x, t, {0.1, Reduction::none}).to_vector<double>(),
                {0.5477021174, 0.3007742190, 0.0, 1.3823455501}, 1e-6);
  REQUIRE(cross_entropy(x, t, {0.1}).item() == Approx(0.7436072955).epsilon(1e-6));
  REQUIRE(cross_entropy(x, t, {0.1, Reduction::sum}).item() == Approx(2.2308218865).epsilon(1e-6));
  // With no ignored sample the mean is over all 4.
  Tensor t4 = Tensor::from_vector<int64_t>({1, 2, 0, 0}, {4});
  REQUIRE(cross_entropy(x, t4).item() == Approx(0.7456918771).epsilon(1e-6));
  REQUIRE(cross_entropy(x, t4, {0.1}).item() == Approx(0.8323585438).epsilon(1e-6));
  // i32 targets work the same.
  REQUIRE(cross_entropy(x, t.to(DType::i32), {0.1}).item() == Approx(0.7436072955).epsilon(1e-6));
}

TEST_CASE("cross_entropy: gradient of the example is softmax minus the smoothed target") {
  Tensor x = example_logits(), t = example_target();
  x.set_requires_grad(true);
  cross_entropy(x, t, {0.1}).backward();
  require_close(x.grad().to_vector<double>(),
                {0.0659635214, -0.1016005380, 0.0356370166, 0.0059767575, -0.0054230538, -0.0005537037, 0, 0, 0,
                 -0.2246122910, 0.2240170598, 0.0005952312},
                1e-6);
}

TEST_CASE("cross_entropy: [N, C, d1, d2] matches naive loops for every option") {
  Generator gen(3);
  Tensor x = test::random_input({3, 4, 2, 5}, 31, -3, 3);
  Tensor t = Tensor::randint(0, 4, {3, 2, 5}, gen);
  int64_t* pt = t.data<int64_t>();
  pt[3] = pt[17] = -100;
  for (double eps : {0.0, 0.2, 1.0}) {
    INFO("label_smoothing " << eps);
    std::vector<double> want = naive_cross_entropy(x, t, eps, -100);
    Tensor none = cross_entropy(x, t, {eps, Reduction::none});
    REQUIRE(none.shape() == Shape{3, 2, 5});
    require_close(none.to_vector<double>(), want, 1e-5);
    double total = 0;
    for (double v : want) total += v;
    REQUIRE(cross_entropy(x, t, {eps, Reduction::sum}).item() == Approx(total).epsilon(1e-5));
    REQUIRE(cross_entropy(x, t, {eps, Reduction::mean}).item() == Approx(total / 28).epsilon(1e-5));
  }
  // The torch value for a [2, 3, 4] example: x = sin(arange(24)), smoothing 0.2.
  std::vector<float> xs(24);
  for (int i = 0; i < 24; ++i) xs[i] = static_cast<float>(std::sin(i));
  Tensor x3 = Tensor::from_vector<float>(xs, {2, 3, 4});
  Tensor t3 = Tensor::from_vector<int64_t>({0, 1, 2, -100, 2, 2, 1, 0}, {2, 4});
  require_close(cross_entropy(x3, t3, {0.2, Reduction::none}).to_vector<double>(),
                {1.4096921007, 2.1856926433, 1.7695372193, 0, 0.6056266755, 0.7492046205, 2.0099481045, 0.7375489622},
                1e-6);
  REQUIRE(cross_entropy(x3, t3, {0.2}).item() == Approx(1.3524643323).epsilon(1e-6));
}

TEST_CASE("cross_entropy: a custom ignore_index and a [C] input") {
  Tensor x = example_logits(), t = Tensor::from_vector<int64_t>({1, 2, 7, 0}, {4});
  REQUIRE(cross_entropy(x, t, {0, Reduction::mean, 7}).item() == Approx(0.6280517399).epsilon(1e-6));
  // [C] logits with a 0-d target: one sample, a 0-d loss.
  Tensor row = Tensor::from_vector<float>({1, 2, 0.5f}, {3});
  Tensor one = Tensor::from_vector<int64_t>({1}, {});
  Tensor l = cross_entropy(row, one, {0, Reduction::none});
  REQUIRE(l.shape() == Shape{});
  REQUIRE(l.item() == Approx(0.4643687841).epsilon(1e-6));
  REQUIRE(cross_entropy(row, one).item() == Approx(0.4643687841).epsilon(1e-6));
  Tensor r = test::random_input({5}, 47, -2, 2);
  REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], one, {0.2}); }, {r});
  REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return nll_loss(in[0], one); }, {r});
}

TEST_CASE("cross_entropy: every target ignored") {
  Tensor x = example_logits();
  x.set_requires_grad(true);
  Tensor t = Tensor::full({4}, -100, DType::i64);
  REQUIRE(std::isnan(cross_entropy(x, t).item()));  // 0 / 0, as in PyTorch
  Tensor s = cross_entropy(x, t, {0.3, Reduction::sum});
  REQUIRE(s.item() == 0.0);
  s.backward();
  for (float g : x.grad().to_vector<float>()) REQUIRE(g == 0.0f);
}

TEST_CASE("cross_entropy: huge logits stay finite and exact") {
  Tensor x = Tensor::from_vector<float>({1e4f, 1e4f - 2, 1e4f - 5, -1e4f, 0, 1e4f}, {2, 3});
  Tensor t = Tensor::from_vector<int64_t>({1, 0}, {2});
  x.set_requires_grad(true);
  Tensor l = cross_entropy(x, t, {0.1, Reduction::none});
  // Same values as for the logits shifted by their row maximum.
  Tensor shifted = Tensor::from_vector<float>({0, -2, -5, -2e4f, -1e4f, 0}, {2, 3});
  require_close(l.to_vector<double>(), naive_cross_entropy(shifted, t, 0.1, -100), 1e-5);
  sum(l).backward();
  for (float g : x.grad().to_vector<float>()) REQUIRE(std::isfinite(g));
  REQUIRE(x.grad().at({1, 0}) == Approx(-0.9 - 0.1 / 3).epsilon(1e-6));  // p = 0 at the target
}

TEST_CASE("cross_entropy: gradcheck over reductions, smoothing, ignore_index and shapes") {
  Generator gen(9);
  for (const Shape& s : {Shape{5, 4}, Shape{2, 3, 4}, Shape{2, 3, 2, 2}}) {
    Shape ts = s;
    ts.erase(ts.begin() + 1);
    Tensor t = Tensor::randint(0, s[1], ts, gen);
    t.data<int64_t>()[1] = -100;
    Tensor x = test::random_input(s, 41, -2, 2);
    for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum})
      for (double eps : {0.0, 0.25}) {
        INFO("shape " << shape_str(s) << " reduction " << static_cast<int>(r) << " eps " << eps);
        CrossEntropyOptions o{eps, r};
        REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, o); }, {x});
      }
  }
  // i32 targets, and the loss feeding further ops.
  Tensor x = test::random_input({4, 6}, 42, -2, 2);
  Tensor t = Tensor::from_vector<int32_t>({5, 0, 3, 3}, {4});
  REQUIRE_GRADCHECK(
      [&](const std::vector<Tensor>& in) { return mul(cross_entropy(in[0], t, {0.1, Reduction::none}), sum(in[0], {1})); },
      {x});
}

TEST_CASE("cross_entropy: equals nll_loss of log_softmax") {
  Generator gen(4);
  Tensor x = test::random_input({6, 5}, 43, -3, 3);
  Tensor t = Tensor::randint(0, 5, {6}, gen);
  for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum}) {
    Tensor a = cross_entropy(x, t, {0, r});
    Tensor b = nll_loss(log_softmax(x, 1), t, {r});
    require_close(a.to_vector<double>(), b.to_vector<double>(), 1e-6);
  }
}

TEST_CASE("cross_entropy: errors name the op, the value and the position") {
  Tensor x = example_logits();
  Tensor bad = Tensor::from_vector<int64_t>({1, 3, 0, 0}, {4});
  REQUIRE_THROWS_AS(cross_entropy(x, bad), Error);
  REQUIRE_THROWS_WITH(cross_entropy(x, bad),
                      Catch::Contains("cross_entropy") && Catch::Contains("target 3") && Catch::Contains("[1]"));
  Tensor neg = Tensor::from_vector<int64_t>({1, 0, -1, 0}, {4});
  REQUIRE_THROWS_WITH(cross_entropy(x, neg), Catch::Contains("target -1") && Catch::Contains("[2]"));
  // The position is reported in the target's own shape.
  Tensor x3 = Tensor::zeros({2, 3, 4});
  Tensor t3 = Tensor::zeros({2, 4}, DType::i64);
  t3.data<int64_t>()[6] = 9;
  REQUIRE_THROWS_WITH(cross_entropy(x3, t3), Catch::Contains("target 9") && Catch::Contains("[1, 2]"));
  // Shapes, dtypes and options.
  REQUIRE_THROWS_WITH(cross_entropy(x, Tensor::zeros({3}, DType::i64)),
                      Catch::Contains("cross_entropy") && Catch::Contains("[3]") && Catch::Contains("[4, 3]"));
  REQUIRE_THROWS_WITH(cross_entropy(x, Tensor::zeros({4})), Catch::Contains("cross_entropy") && Catch::Contains("f32"));
  REQUIRE_THROWS_WITH(cross_entropy(Tensor::zeros({4, 3}, DType::i64), example_target()), Catch::Contains("i64"));
  REQUIRE_THROWS_WITH(cross_entropy(x, example_target(), {1.5}), Catch::Contains("label_smoothing"));
  REQUIRE_THROWS_WITH(cross_entropy(x, example_target(), {-0.1}), Catch::Contains("label_smoothing"));
  REQUIRE_THROWS_AS(cross_entropy(Tensor::scalar(1.0), Tensor::zeros({}, DType::i64)), Error);
}

TEST_CASE("nll_loss: values, reductions, ignore_index, gradient, errors") {
  // Hand-computed: targets pick -2.0 and -0.1; mean (2.0 + 0.1) / 2.
  Tensor lp = Tensor::from_vector<float>({-0.5f, -1.2f, -2.0f, -0.1f, -3.0f, -2.5f}, {2, 3});
  Tensor t = Tensor::from_vector<int64_t>({2, 0}, {2});
  REQUIRE(nll_loss(lp, t).item() == Approx(1.05).epsilon(1e-6));
  REQUIRE(nll_loss(lp, t, {Reduction::sum}).item() == Approx(2.1).epsilon(1e-6));
  require_close(nll_loss(lp, t, {Reduction::none}).to_vector<double>(), {2.0, 0.1}, 1e-6);
  Tensor ti = Tensor::from_vector<int64_t>({2, -100}, {2});
  REQUIRE(nll_loss(lp, ti).item() == Approx(2.0).epsilon(1e-6));
  require_close(nll_loss(lp, ti, {Reduction::none}).to_vector<double>(), {2.0, 0.0}, 1e-6);

  Generator gen(6);
  for (const Shape& s : {Shape{5, 4}, Shape{2, 3, 4}}) {
    Shape ts = s;
    ts.erase(ts.begin() + 1);
    Tensor tt = Tensor::randint(0, s[1], ts, gen);
    tt.data<int64_t>()[0] = -100;
    Tensor x = test::random_input(s, 44, -3, 0);
    for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum})
      REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return nll_loss(in[0], tt, {r}); }, {x});
  }
  REQUIRE_THROWS_WITH(nll_loss(lp, Tensor::from_vector<int64_t>({3, 0}, {2})),
                      Catch::Contains("nll_loss") && Catch::Contains("target 3") && Catch::Contains("[0]"));
  REQUIRE_THROWS_WITH(nll_loss(lp, Tensor::zeros({2, 1}, DType::i64)), Catch::Contains("nll_loss"));
}

TEST_CASE("mse_loss: values, reductions, gradient, errors") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector<float>({1.5f, 2, 1, 5}, {2, 2});
  // Squared errors 0.25, 0, 4, 1.
  require_close(mse_loss(a, b, Reduction::none).to_vector<double>(), {0.25, 0, 4, 1}, 1e-7);
  REQUIRE(mse_loss(a, b).item() == Approx(1.3125).epsilon(1e-7));
  REQUIRE(mse_loss(a, b, Reduction::sum).item() == Approx(5.25).epsilon(1e-7));
  for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum}) {
    Tensor x = test::random_input({3, 4}, 45), y = test::random_input({3, 4}, 46);
    REQUIRE_GRADCHECK([r](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], r); }, {x, y});
  }
  REQUIRE_THROWS_WITH(mse_loss(a, Tensor::zeros({4})), Catch::Contains("mse_loss") && Catch::Contains("[2, 2]") &&
                                                           Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(mse_loss(a, Tensor::zeros({2, 2}, DType::i64)), Catch::Contains("mse_loss"));
}
