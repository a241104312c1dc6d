// Batch norm: forward against naive loops, running-stat updates, gradients, determinism, errors.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops/batch_norm.h"
#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

#define REQUIRE_OP_ERROR(expr, what)                  \
  do {                                                \
    REQUIRE_THROWS_AS(expr, lowbit::Error);           \
    REQUIRE_THROWS_WITH(expr, Catch::Contains(what)); \
  } while (0)

namespace {

BatchNormOptions train_opts(double momentum = 0.1, double eps = 1e-5) { return {true, momentum, eps}; }
BatchNormOptions eval_opts(double eps = 1e-5) { return {false, 0.1, eps}; }

struct Stats {
  std::vector<double> mean, var;  // biased var
};

// x as [N, C, S]: per-channel mean and biased variance by a two-pass naive loop.
Stats naive_stats(const Tensor& x) {
  int64_t n = x.size(0), c = x.size(1), s = x.numel() / (n * c);
  std::vector<double> v = x.to_vector<double>();
  Stats st{std::vector<double>(c, 0), std::vector<double>(c, 0)};
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < s; ++k) st.mean[ch] += v[(i * c + ch) * s + k];
    st.mean[ch] /= double(n * s);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < s; ++k) st.var[ch] += std::pow(v[(i * c + ch) * s + k] - st.mean[ch], 2);
    st.var[ch] /= double(n * s);
  }
  return st;
}

std::vector<double> naive_bn(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& var,
                             const Tensor& w, const Tensor& b, double eps) {
  int64_t n = x.size(0), c = x.size(1), s = x.numel() / (n * c);
  std::vector<double> v = x.to_vector<double>(), out(v.size());
  std::vector<double> wv = w.defined() ? w.to_vector<double>() : std::vector<double>(c, 1.0);
  std::vector<double> bv = b.defined() ? b.to_vector<double>() : std::vector<double>(c, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t k = 0; k < s; ++k) {
        size_t at = static_cast<size_t>((i * c + ch) * s + k);
        out[at] = (v[at] - mean[ch]) / std::sqrt(var[ch] + eps) * wv[ch] + bv[ch];
      }
  return out;
}

void require_close(const std::vector<float>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i);
    REQUIRE(a[i] == Approx(b[i]).margin(tol));
  }
}

}  // namespace

TEST_CASE("batch_norm: training forward matches naive loops for 2-D, 3-D and 4-D inputs") {
  for (Shape shape : {Shape{8, 3}, Shape{4, 3, 5}, Shape{2, 4, 3, 3}, Shape{3, 2, 10, 10}}) {
    INFO(shape_str(shape));
    Tensor x = test::random_input(shape, 1, -3, 5);
    int64_t c = shape[1];
    Tensor w = test::random_input({c}, 2, 0.5, 2), b = test::random_input({c}, 3);
    Stats st = naive_stats(x);
    require_close(batch_norm(x, w, b, {}, {}, train_opts()).to_vector<float>(),
                  naive_bn(x, st.mean, st.var, w, b, 1e-5), 1e-4);
    require_close(batch_norm(x, {}, {}, {}, {}, train_opts(0.1, 0.5)).to_vector<float>(),
                  naive_bn(x, st.mean, st.var, {}, {}, 0.5), 1e-4);
  }
}

TEST_CASE("batch_norm: statistics stay accurate with a large mean") {
  Tensor x = add(test::random_input({4, 2, 8, 8}, 4, -0.01, 0.01).detach(), 1000.0);
  Stats st = naive_stats(x);
  require_close(batch_norm(x, {}, {}, {}, {}, train_opts(0.1, 1e-12)).to_vector<float>(),
                naive_bn(x, st.mean, st.var, {}, {}, 1e-12), 2e-2);
}

TEST_CASE("batch_norm: running stats are updated with the unbiased variance") {
  // Channel 0: 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased 14/3); channel 1: 0, 0, 4, 4.
  Tensor x = Tensor::from_vector<float>({1, 0, 2, 0, 3, 4, 6, 4}, {4, 2});
  Tensor rm = Tensor::from_vector<float>({1, -1}, {2});
  Tensor rv = Tensor::from_vector<float>({2, 0.5}, {2});
  batch_norm(x, {}, {}, rm, rv, train_opts(0.25));
  REQUIRE(rm.at({0}) == Approx(0.75 * 1 + 0.25 * 3));
  REQUIRE(rm.at({1}) == Approx(0.75 * -1 + 0.25 * 2));
  REQUIRE(rv.at({0}) == Approx(0.75 * 2 + 0.25 * 14.0 / 3));
  REQUIRE(rv.at({1}) == Approx(0.75 * 0.5 + 0.25 * 16.0 / 3));

  // 4-D: M = N*H*W elements per channel.
  Tensor x4 = test::random_input({3, 2, 2, 3}, 5, -1, 3);
  Stats st = naive_stats(x4);
  Tensor rm4 = Tensor::zeros({2}), rv4 = Tensor::ones({2});
  Tensor y = batch_norm(x4, test::random_input({2}, 6), {}, rm4, rv4, train_opts());
  for (int64_t c = 0; c < 2; ++c) {
    REQUIRE(rm4.at({c}) == Approx(0.1 * st.mean[c]).margin(1e-6));
    REQUIRE(rv4.at({c}) == Approx(0.9 + 0.1 * st.var[c] * 18 / 17).margin(1e-6));
  }
  // The update is not part of the graph.
  REQUIRE(y.requires_grad());
  REQUIRE_FALSE(rm4.requires_grad());
  REQUIRE_FALSE(rv4.requires_grad());
  REQUIRE(rm4.is_leaf());
}

TEST_CASE("batch_norm: eval uses the running stats and leaves them alone") {
  Tensor x = test::random_input({3, 4, 2, 2}, 7);
  Tensor rm = Tensor::from_vector<float>({0.1f, -0.2f, 0.3f, 0}, {4});
  Tensor rv = Tensor::from_vector<float>({0.5f, 1, 2, 0.25f}, {4});
  Tensor w = test::random_input({4}, 8), b = test::random_input({4}, 9);
  Tensor y = batch_norm(x, w, b, rm, rv, eval_opts());
  require_close(y.to_vector<float>(), naive_bn(x, {0.1, -0.2, 0.3, 0}, {0.5, 1, 2, 0.25}, w, b, 1e-5), 1e-5);
  REQUIRE(rm.to_vector<float>() == std::vector<float>{0.1f, -0.2f, 0.3f, 0});
  REQUIRE(rv.to_vector<float>() == std::vector<float>{0.5f, 1, 2, 0.25f});
}

TEST_CASE("batch_norm: training gradcheck, with and without affine, 2-D and 4-D") {
  for (Shape shape : {Shape{6, 3}, Shape{2, 3, 3, 3}, Shape{3, 2, 4}}) {
    INFO(shape_str(shape));
    int64_t c = shape[1];
    Tensor x = test::random_input(shape, 10, -2, 2);
    Tensor w = test::random_input({c}, 11, 0.5, 1.5), b = test::random_input({c}, 12);
    Tensor rm = Tensor::zeros({c}), rv = Tensor::ones({c});
    REQUIRE_GRADCHECK(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, train_opts()); },
        {x, w, b});
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return batch_norm(in[0], {}, {}, {}, {}, train_opts()); },
                      {x});
    // Only the weight needs a gradient.
    REQUIRE_GRADCHECK(
        [&](const std::vector<Tensor>& in) { return batch_norm(x.detach(), in[0], {}, {}, {}, train_opts()); }, {w});
  }
}

TEST_CASE("batch_norm: eval gradcheck, with and without affine") {
  for (Shape shape : {Shape{5, 3}, Shape{2, 3, 2, 3}}) {
    INFO(shape_str(shape));
    Tensor x = test::random_input(shape, 20, -2, 2);
    Tensor w = test::random_input({3}, 21, 0.5, 1.5), b = test::random_input({3}, 22);
    Tensor rm = Tensor::from_vector<float>({0.2f, -0.1f, 0}, {3}), rv = Tensor::from_vector<float>({0.5f, 2, 1}, {3});
    REQUIRE_GRADCHECK(
        [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, eval_opts()); }, {x, w, b});
    REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return batch_norm(in[0], {}, {}, rm, rv, eval_opts()); },
                      {x});
  }
}

TEST_CASE("batch_norm: composed with a loss, gradients match the fused formula") {
  // Training normalised output has zero mean per channel, so d(sum y)/dx is 0 without affine.
  Tensor x = test::random_input({4, 3, 2, 2}, 30);
  batch_norm(x, {}, {}, {}, {}, train_opts()).backward(Tensor::ones({4, 3, 2, 2}));
  for (float g : x.grad().to_vector<float>()) REQUIRE(g == Approx(0).margin(1e-5));
}

TEST_CASE("batch_norm: forward and backward are identical across thread counts") {
  for (Shape shape : {Shape{64, 8, 16, 16}, Shape{4096, 16}}) {
    INFO(shape_str(shape));
    int64_t c = shape[1];
    Tensor x = test::random_input(shape, 40, -1, 3);
    Tensor w = test::random_input({c}, 41), b = test::random_input({c}, 42);
    Generator gen(43);
    Tensor dy = Tensor::rand(shape, gen, -1, 1);
    auto run = [&](int threads) {
      set_num_threads(threads);
      x.zero_grad();
      w.zero_grad();
      Tensor rm = Tensor::zeros({c}), rv = Tensor::ones({c});
      Tensor y = batch_norm(x, w, b, rm, rv, train_opts());
      y.backward(dy);
      std::vector<float> out = y.to_vector<float>();
      for (const Tensor& t : {x.grad(), w.grad(), rm, rv}) {
        std::vector<float> v = t.to_vector<float>();
        out.insert(out.end(), v.begin(), v.end());
      }
      return out;
    };
    int before = get_num_threads();
    std::vector<float> one = run(1), two = run(2);
    set_num_threads(before);
    REQUIRE(one == two);
  }
}

TEST_CASE("batch_norm: bad shapes are errors naming the op and shapes") {
  Tensor x = Tensor::zeros({4, 3, 2, 2});
  Tensor c3 = Tensor::ones({3}), c2 = Tensor::ones({2});
  REQUIRE_OP_ERROR(batch_norm(Tensor::zeros({5}), {}, {}, {}, {}, train_opts()), "batch_norm");
  REQUIRE_OP_ERROR(batch_norm(Tensor::zeros({5}), {}, {}, {}, {}, train_opts()), "[5]");
  REQUIRE_OP_ERROR(batch_norm(x, c2, c3, {}, {}, train_opts()), "weight");
  REQUIRE_OP_ERROR(batch_norm(x, c2, c3, {}, {}, train_opts()), "[4, 3, 2, 2]");
  REQUIRE_OP_ERROR(batch_norm(x, c3, c2, {}, {}, train_opts()), "bias");
  REQUIRE_OP_ERROR(batch_norm(x, c3, c3, c2, c3, train_opts()), "running_mean");
  REQUIRE_OP_ERROR(batch_norm(x, c3, c3, c3, Tensor::ones({3, 1}), train_opts()), "running_var");
  REQUIRE_OP_ERROR(batch_norm(x, c3, c3, c3, {}, train_opts()), "together");
  REQUIRE_OP_ERROR(batch_norm(x, {}, {}, {}, {}, eval_opts()), "eval");
  REQUIRE_OP_ERROR(batch_norm(Tensor::zeros({1, 3}), {}, {}, {}, {}, train_opts()), "more than one value");
  REQUIRE_OP_ERROR(batch_norm(Tensor::zeros({4, 3}, DType::i32), {}, {}, {}, {}, train_opts()), "f32");
}
