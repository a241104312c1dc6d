// softmax and log_softmax: naive references over every axis, stability with huge
// logits, gradients (gradcheck and the closed forms on larger tensors), errors.
#include <cmath>

#include <catch2/catch.hpp>

#include "core/ops/softmax.h"
#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {

// Naive softmax in double over `axis` of a row-major tensor (values given), in the
// textbook form exp(x - max) / sum(exp(x - max)); log=true gives its log.
std::vector<double> naive_softmax(const std::vector<double>& x, const Shape& s, int64_t axis, bool log) {
  int64_t outer = 1, n = s[axis], inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= s[i];
  for (size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < inner; ++k) {
      auto at = [&](int64_t j) { return static_cast<size_t>((o * n + j) * inner + k); };
      double m = -INFINITY, z = 0;
      for (int64_t j = 0; j < n; ++j) m = std::max(m, x[at(j)]);
      for (int64_t j = 0; j < n; ++j) z += std::exp(x[at(j)] - m);
      for (int64_t j = 0; j < n; ++j) y[at(j)] = log ? x[at(j)] - m - std::log(z) : std::exp(x[at(j)] - m) / z;
    }
  return y;
}

void require_close(const Tensor& y, const std::vector<double>& want, double tol) {
  std::vector<double> got = y.to_vector<double>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(want[i]).margin(tol).epsilon(tol));
  }
}

}  // namespace

TEST_CASE("softmax: forward matches the naive formula over every axis") {
  for (const Shape& s : {Shape{3, 4, 5}, Shape{7}, Shape{2, 300}, Shape{2, 3, 300}, Shape{4, 1, 2}}) {
    Tensor x = test::random_input(s, 3, -5, 5);
    std::vector<double> xv = x.to_vector<double>();
    for (int64_t axis = 0; axis < x.dim(); ++axis) {
      INFO("shape " << shape_str(s) << " axis " << axis);
      require_close(softmax(x, axis), naive_softmax(xv, s, axis, false), 1e-6);
      require_close(log_softmax(x, axis), naive_softmax(xv, s, axis, true), 1e-5);
      // Negative axes count from the end.
      require_close(softmax(x, axis - x.dim()), naive_softmax(xv, s, axis, false), 1e-6);
    }
  }
  // The default axis is the last; a 0-d tensor is a single slice.
  Tensor x = test::random_input({2, 3}, 4);
  require_close(softmax(x), naive_softmax(x.to_vector<double>(), {2, 3}, 1, false), 1e-6);
  REQUIRE(softmax(Tensor::scalar(3.0)).item() == 1.0);
  REQUIRE(log_softmax(Tensor::scalar(3.0)).item() == 0.0);
}

TEST_CASE("softmax: huge logits do not overflow") {
  Tensor x = Tensor::from_vector<float>({1e4f, 1e4f - 1, 1e4f - 2, -1e4f, 2e4f, 2e4f, 0, -3e4f}, {2, 4});
  std::vector<double> want = naive_softmax(x.to_vector<double>(), {2, 4}, 1, false);
  std::vector<double> want_log = naive_softmax(x.to_vector<double>(), {2, 4}, 1, true);
  require_close(softmax(x, 1), want, 1e-6);
  require_close(log_softmax(x, 1), want_log, 1e-6);
  std::vector<float> ls = log_softmax(x, 1).to_vector<float>();
  for (float v : ls) REQUIRE(std::isfinite(v));
  // log_softmax stays exact where log(softmax) would be log(0) = -inf.
  REQUIRE(ls[3] == Approx(-2e4 - std::log(1 + std::exp(-1.0) + std::exp(-2.0))).epsilon(1e-7));
  // Along axis 0 (strided columns) too.
  require_close(softmax(x, 0), naive_softmax(x.to_vector<double>(), {2, 4}, 0, false), 1e-6);
}

TEST_CASE("softmax: rows sum to one, log_softmax exponentiates to softmax") {
  Tensor x = test::random_input({6, 9}, 8, -3, 3);
  std::vector<float> y = softmax(x, 1).to_vector<float>();
  for (int r = 0; r < 6; ++r) {
    double s = 0;
    for (int c = 0; c < 9; ++c) s += y[r * 9 + c];
    REQUIRE(s == Approx(1.0).epsilon(1e-6));
  }
  require_close(exp(log_softmax(x, 1)), softmax(x, 1).to_vector<double>(), 1e-6);
}

TEST_CASE("softmax: gradcheck over every axis") {
  Tensor x = test::random_input({3, 4, 5}, 12, -2, 2);
  for (int64_t axis : {0, 1, 2, -1}) {
    INFO("axis " << axis);
    REQUIRE_GRADCHECK([axis](const std::vector<Tensor>& in) { return softmax(in[0], axis); }, {x});
    REQUIRE_GRADCHECK([axis](const std::vector<Tensor>& in) { return log_softmax(in[0], axis); }, {x});
  }
  Tensor v = test::random_input({6}, 13, -2, 2);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return softmax(in[0]); }, {v});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return log_softmax(in[0]) * in[0]; }, {v});
  // Large logits: the gradient is the same as for the logits shifted to 0.
  Tensor big = Tensor::from_vector<float>({1e4f, 1e4f - 1, 1e4f - 3}, {3});
  Tensor small = Tensor::from_vector<float>({0, -1, -3}, {3});
  big.set_requires_grad(true);
  small.set_requires_grad(true);
  Tensor w = Tensor::from_vector<float>({0.5f, -1, 2}, {3});
  sum(log_softmax(big) * w).backward();
  sum(log_softmax(small) * w).backward();
  require_close(big.grad(), small.grad().to_vector<double>(), 1e-6);
}

TEST_CASE("softmax: backward equals the closed forms on larger tensors") {
  // Shapes whose columns span several kernel chunks.
  for (const Shape& s : {Shape{3, 5, 260}, Shape{4, 300}}) {
    for (int64_t axis : {0, 1}) {
      Tensor x = test::random_input(s, 15, -3, 3);
      Generator gen(16);
      Tensor dy = Tensor::rand(s, gen, -1, 1);
      for (bool log : {false, true}) {
        INFO("shape " << shape_str(s) << " axis " << axis << " log " << log);
        x.zero_grad();
        Tensor y = log ? log_softmax(x, axis) : softmax(x, axis);
        y.backward(dy);
        // softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy).
        Tensor yd = y.detach();
        Tensor want = log ? dy - exp(yd) * sum(dy, {axis}, true) : yd * (dy - sum(dy * yd, {axis}, true));
        require_close(x.grad(), want.to_vector<double>(), 1e-5);
      }
    }
  }
}

TEST_CASE("softmax: results do not depend on the thread count") {
  Generator gen(5);
  Tensor x = Tensor::randn({64, 1000}, gen);
  const int saved = get_num_threads();
  set_num_threads(1);
  std::vector<float> a = softmax(x, 1).to_vector<float>(), b = log_softmax(x, 0).to_vector<float>();
  set_num_threads(2);
  std::vector<float> c = softmax(x, 1).to_vector<float>(), d = log_softmax(x, 0).to_vector<float>();
  set_num_threads(saved);
  REQUIRE(a == c);
  REQUIRE(b == d);
}

TEST_CASE("softmax: errors name the op") {
  Tensor x = test::random_input({2, 3}, 1);
  REQUIRE_THROWS_AS(softmax(x, 2), Error);
  REQUIRE_THROWS_WITH(softmax(x, -3), Catch::Contains("softmax") && Catch::Contains("out of range"));
  REQUIRE_THROWS_WITH(log_softmax(x, 5), Catch::Contains("log_softmax"));
  Tensor i = Tensor::zeros({2, 3}, DType::i64);
  REQUIRE_THROWS_WITH(softmax(i, 1), Catch::Contains("softmax") && Catch::Contains("i64"));
}
