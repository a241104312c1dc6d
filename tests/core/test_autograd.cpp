// The autograd engine: accumulation, shared sub-expressions, no_grad, detach,
// graph freeing, retain_graph and CustomFunction.
#include <catch2/catch.hpp>

#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {
Tensor leaf(std::vector<float> v) {
  Tensor t = Tensor::from_vector<float>(v, {static_cast<int64_t>(v.size())});
  return t.set_requires_grad(true);
}
std::vector<float> grad_of(const Tensor& t) { return t.grad().to_vector<float>(); }
}  // namespace

TEST_CASE("autograd: a tensor used twice gets the sum of its gradients") {
  Tensor x = leaf({1, 2, 3});
  Tensor y = sum(x * x + x);  // dy/dx = 2x + 1
  y.backward();
  REQUIRE(grad_of(x) == std::vector<float>{3, 5, 7});
}

TEST_CASE("autograd: shared sub-expressions are walked once, after all their consumers") {
  Tensor x = leaf({0.5f, -1.0f});
  Tensor s = exp(x);           // shared
  Tensor y = sum(s * s + s);   // d/dx = (2 e^2x + e^x)
  y.backward();
  std::vector<float> g = grad_of(x);
  for (int i = 0; i < 2; ++i) {
    float xv = i == 0 ? 0.5f : -1.0f;
    REQUIRE(g[i] == Approx(2 * std::exp(2 * xv) + std::exp(xv)).epsilon(1e-5));
  }
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) {
    Tensor s2 = sigmoid(in[0]);
    Tensor t = s2 * in[1];
    return t * s2 + t;
  }, {test::random_input({3, 4}, 1), test::random_input({4}, 2)});
}

TEST_CASE("autograd: gradients accumulate over two backward calls until zeroed") {
  Tensor x = leaf({1, 2});
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  REQUIRE(grad_of(x) == std::vector<float>{6, 6});
  x.zero_grad();
  REQUIRE_FALSE(x.grad().defined());
  sum(x * 2.0).backward();
  REQUIRE(grad_of(x) == std::vector<float>{2, 2});
}

TEST_CASE("autograd: no_grad records nothing") {
  Tensor x = leaf({1, 2});
  Tensor y;
  {
    NoGradGuard guard;
    REQUIRE_FALSE(grad_enabled());
    y = x * 2.0;
  }
  REQUIRE(grad_enabled());
  REQUIRE_FALSE(y.requires_grad());
  REQUIRE(y.is_leaf());
  REQUIRE_THROWS_AS(sum(y).backward(), Error);
}

TEST_CASE("autograd: detach cuts the graph and shares storage") {
  Tensor x = leaf({1, 2});
  Tensor d = (x * x).detach();
  REQUIRE_FALSE(d.requires_grad());
  Tensor y = sum(d * x);  // gradient only through the second factor
  y.backward();
  REQUIRE(grad_of(x) == std::vector<float>{1, 4});
  Tensor e = x.detach();
  REQUIRE(e.raw_data() == x.raw_data());
}

TEST_CASE("autograd: the graph is freed after backward unless retained") {
  Tensor x = leaf({1, 2});
  Tensor y = sum(exp(x));
  y.backward();
  REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("second time"));

  Tensor z = sum(exp(x));
  x.zero_grad();
  z.backward({}, /*retain_graph=*/true);
  z.backward();
  std::vector<float> g = grad_of(x);
  REQUIRE(g[0] == Approx(2 * std::exp(1.0f)));
}

TEST_CASE("autograd: the graph releases saved tensors once the output is dropped") {
  Tensor x = leaf({1, 2, 3});
  std::weak_ptr<TensorImpl> saved;
  {
    Tensor e = exp(x);  // exp saves its output for backward
    Tensor y = sum(e);
    saved = e.impl_ptr();
  }
  REQUIRE(saved.expired());
}

TEST_CASE("autograd: backward errors are clear") {
  Tensor x = leaf({1, 2});
  Tensor y = x * 2.0;
  REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("non-scalar"));
  REQUIRE_THROWS_WITH(y.backward(Tensor::ones({3})), Catch::Contains("[3]"));
  Tensor c = Tensor::ones({2});
  REQUIRE_THROWS_WITH(sum(c).backward(), Catch::Contains("does not require a gradient"));
}

TEST_CASE("autograd: backward from a leaf accumulates the seed") {
  Tensor x = leaf({1, 2});
  x.backward(Tensor::from_vector<float>({0.5f, 2.0f}, {2}));
  REQUIRE(grad_of(x) == std::vector<float>{0.5f, 2.0f});
}

namespace {
// Round to the nearest integer; backward (a straight-through estimator, by convention
// not calculus): the gradient passes unchanged inside [lo, hi] and is zero outside.
struct RoundClampSte : CustomFunction {
  RoundClampSte(float lo, float hi) : lo_(lo), hi_(hi) {}
  std::string name() const override { return "RoundClampSte"; }
  Tensor forward(const std::vector<Tensor>& in) override {
    x_ = in[0];
    return round(clamp(in[0], lo_, hi_));
  }
  std::vector<Tensor> backward(const Tensor& dy) override {
    Tensor inside = mul(ge(x_, Tensor::scalar(lo_)).to(DType::f32), le(x_, Tensor::scalar(hi_)).to(DType::f32));
    return {dy * inside};
  }
  void release() override { x_ = Tensor(); }
  float lo_, hi_;
  Tensor x_;
};

// y = a * b^2, a hand-written two-input function.
struct MulSquare : CustomFunction {
  std::string name() const override { return "MulSquare"; }
  Tensor forward(const std::vector<Tensor>& in) override {
    a_ = in[0];
    b_ = in[1];
    return in[0] * in[1] * in[1];
  }
  std::vector<Tensor> backward(const Tensor& dy) override {
    ++calls;
    Tensor ga, gb;
    if (needs_input_grad(0)) ga = dy * b_ * b_;
    if (needs_input_grad(1)) gb = dy * a_ * b_ * 2.0;
    return {ga, gb};
  }
  Tensor a_, b_;
  int calls = 0;
};
}  // namespace

TEST_CASE("autograd: CustomFunction runs its own forward and backward") {
  Tensor x = leaf({-3.0f, -0.4f, 0.6f, 2.2f});
  Tensor y = CustomFunction::apply<RoundClampSte>({x}, -1.0f, 1.0f);
  REQUIRE(y.requires_grad());
  REQUIRE(y.to_vector<float>() == std::vector<float>{-1, -0, 1, 1});
  sum(y * 2.0).backward();
  REQUIRE(grad_of(x) == std::vector<float>{0, 2, 2, 0});

  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return CustomFunction::apply<MulSquare>(in); },
                    {test::random_input({3}, 4), test::random_input({3}, 5)});
}

TEST_CASE("autograd: CustomFunction asks only for the gradients that are needed") {
  Tensor a = leaf({1, 2});
  Tensor b = Tensor::from_vector<float>({3, 4}, {2});  // no gradient
  auto fn = std::make_shared<MulSquare>();
  Tensor y = CustomFunction::run(fn, {a, b});
  REQUIRE_FALSE(fn->needs_input_grad(1));
  sum(y).backward();
  REQUIRE(fn->calls == 1);
  REQUIRE(grad_of(a) == std::vector<float>{9, 16});
  // Without any input requiring a gradient nothing is recorded.
  Tensor z = CustomFunction::apply<MulSquare>({b, b});
  REQUIRE_FALSE(z.requires_grad());
}
