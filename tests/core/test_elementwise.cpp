// Element-wise ops: forward against naive broadcasting loops, gradcheck of every
// differentiable op (broadcast shapes, scalar forms), the stated values at kinks,
// piecewise-constant ops, comparisons, integer dtypes, casts and errors.
#include <cmath>
#include <functional>

#include <catch2/catch.hpp>

#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {

using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;
using RefFn = std::function<double(double, double)>;

// out[i] = f(a[ia], b[ib]) with numpy broadcasting, written out index by index.
std::vector<double> naive_binary(const Tensor& a, const Tensor& b, const RefFn& f, Shape* out_shape = nullptr) {
  const size_t nd = std::max(a.shape().size(), b.shape().size());
  auto padded = [nd](const Shape& s) {
    Shape p(nd - s.size(), 1);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  const Shape sa = padded(a.shape()), sb = padded(b.shape());
  Shape so(nd);
  for (size_t d = 0; d < nd; ++d) so[d] = std::max(sa[d], sb[d]);
  if (out_shape) *out_shape = so;
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), out;
  std::vector<int64_t> idx(nd, 0);
  for (int64_t flat = 0; flat < numel(so); ++flat) {
    int64_t ia = 0, ib = 0;
    for (size_t d = 0; d < nd; ++d) {
      ia = ia * sa[d] + (sa[d] == 1 ? 0 : idx[d]);
      ib = ib * sb[d] + (sb[d] == 1 ? 0 : idx[d]);
    }
    out.push_back(f(av[static_cast<size_t>(ia)], bv[static_cast<size_t>(ib)]));
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < so[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

void require_close(const Tensor& y, const std::vector<double>& want, double tol = 1e-6) {
  std::vector<double> got = y.to_vector<double>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << " of " << shape_str(y.shape()));
    REQUIRE(got[i] == Approx(want[i]).margin(tol).epsilon(tol));
  }
}

std::vector<double> naive_unary(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) e = f(e);
  return v;
}

// Values on a 0.1 grid plus `offset`: two grids offset by 0.05 never come within a
// finite-difference step of each other, so minimum/maximum never switch operand.
Tensor grid_input(const Shape& shape, uint64_t seed, double offset) {
  Tensor t = test::random_input(shape, seed, -1, 1);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(std::round(p[i] * 10) / 10 + offset);
  return t;
}

const std::vector<std::pair<Shape, Shape>> kShapePairs = {
    {{2, 3, 4}, {3, 1}}, {{2, 3, 4}, {1}},    {{2, 3, 4}, {}},     {{2, 3, 4}, {4}}, {{3, 1}, {2, 3, 4}},
    {{2, 1, 4}, {3, 1}}, {{2, 3}, {2, 3}},    {{}, {}},            {{5}, {1, 5}},    {{1}, {2, 1, 3}}};

struct BinaryCase {
  const char* name;
  BinaryFn f;
  RefFn ref;
};

const std::vector<BinaryCase> kBinary = {
    {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double a, double b) { return a + b; }},
    {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double a, double b) { return a - b; }},
    {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double a, double b) { return a * b; }},
    {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double a, double b) { return a / b; }},
    {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
     [](double a, double b) { return std::min(a, b); }},
    {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
     [](double a, double b) { return std::max(a, b); }},
};

}  // namespace

TEST_CASE("elementwise: binary forward matches naive broadcasting loops") {
  for (const BinaryCase& op : kBinary)
    for (const auto& [sa, sb] : kShapePairs) {
      INFO(op.name << " " << shape_str(sa) << " with " << shape_str(sb));
      Tensor a = test::random_input(sa, 1, -2, 2), b = test::random_input(sb, 2, 0.5, 2);
      Shape so;
      std::vector<double> want = naive_binary(a, b, op.ref, &so);
      Tensor y = op.f(a, b);
      REQUIRE(y.shape() == so);
      REQUIRE(y.dtype() == DType::f32);
      require_close(y, want);
    }
  // Operator spellings are the same ops.
  Tensor a = test::random_input({2, 3}, 3), b = test::random_input({3}, 4, 0.5, 2);
  require_close(a + b, add(a, b).to_vector<double>(), 0);
  require_close(a - b, sub(a, b).to_vector<double>(), 0);
  require_close(a * b, mul(a, b).to_vector<double>(), 0);
  require_close(a / b, div(a, b).to_vector<double>(), 0);
  require_close(-a, neg(a).to_vector<double>(), 0);
}

TEST_CASE("elementwise: gradcheck of binary ops on broadcast shapes") {
  for (const BinaryCase& op : kBinary)
    for (const auto& [sa, sb] : kShapePairs) {
      INFO(op.name << " " << shape_str(sa) << " with " << shape_str(sb));
      const std::string name = op.name;
      const bool minmax = name == "minimum" || name == "maximum";
      Tensor a = minmax ? grid_input(sa, 5, 0.05) : test::random_input(sa, 5);
      Tensor b = minmax ? grid_input(sb, 6, 0.0) : test::random_input(sb, 6, name == "div" ? 0.5 : -1, 2);
      REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return op.f(in[0], in[1]); }, {a, b});
    }
}

TEST_CASE("elementwise: gradient flows to one operand when the other needs none") {
  Tensor a = test::random_input({2, 3}, 7);
  Tensor b = test::random_input({3}, 8, 0.5, 2).detach();
  for (const BinaryCase& op : kBinary) {
    if (std::string(op.name) == "minimum" || std::string(op.name) == "maximum") continue;
    INFO(op.name);
    REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return op.f(in[0], in[1]); }, {a, b});
    REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return op.f(in[1], in[0]); }, {a, b});
  }
}

TEST_CASE("elementwise: scalar overloads and operators") {
  Tensor a = test::random_input({2, 3}, 9, 0.5, 2);
  require_close(add(a, 2.5), naive_unary(a, [](double v) { return v + 2.5; }));
  require_close(sub(a, 1.5), naive_unary(a, [](double v) { return v - 1.5; }));
  require_close(mul(a, -3), naive_unary(a, [](double v) { return v * -3; }));
  require_close(div(a, 4), naive_unary(a, [](double v) { return v / 4; }));
  require_close(2.0 - a, naive_unary(a, [](double v) { return 2 - v; }));
  require_close(3.0 * a, naive_unary(a, [](double v) { return 3 * v; }));
  require_close(1.0 + a, naive_unary(a, [](double v) { return 1 + v; }));
  require_close(a * 0.5 + 1.0, naive_unary(a, [](double v) { return v * 0.5 + 1; }));
  require_close(a / 2.0 - 1.0, naive_unary(a, [](double v) { return v / 2 - 1; }));
  for (const Shape& s : {Shape{5}, Shape{2, 3, 4}, Shape{}}) {
    Tensor x = test::random_input(s, 10, 0.5, 2);
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return add(in[0], 2.5); }, {x});
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return sub(in[0], 1.5); }, {x});
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return mul(in[0], -3); }, {x});
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return div(in[0], 4); }, {x});
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return (2.0 - in[0]) * 3.0 + in[0] / 2.0; }, {x});
  }
  // The scalar takes the tensor's dtype.
  Tensor i = Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  Tensor r = add(i, 2.0);
  REQUIRE(r.dtype() == DType::i64);
  REQUIRE(r.to_vector<int64_t>() == std::vector<int64_t>{3, 4, 5});
}

namespace {

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> f;
  std::function<double(double)> ref;
  double lo, hi;                // input range for the checks
  std::vector<double> kinks;    // kept at least 0.05 away in gradchecks
};

const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, -2, 2, {}},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, -2, 2, {}},
      {"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, 0.3, 3, {}},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }, 0.3, 3, {}},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double v) { return std::fabs(v); }, -2, 2, {0}},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }, -3, 3, {}},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); }, -4,
       4, {}},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0; }, -2, 2, {0}},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
       [](double v) { return std::min(std::max(v, -0.5), 0.7); }, -2, 2, {-0.5, 0.7}},
      {"pow 2", [](const Tensor& x) { return pow(x, 2); }, [](double v) { return v * v; }, -2, 2, {}},
      {"pow 3", [](const Tensor& x) { return pow(x, 3); }, [](double v) { return v * v * v; }, -2, 2, {}},
      {"pow 1", [](const Tensor& x) { return pow(x, 1); }, [](double v) { return v; }, -2, 2, {}},
      {"pow 0", [](const Tensor& x) { return pow(x, 0); }, [](double) { return 1.0; }, 0.3, 2, {}},
      {"pow 0.5", [](const Tensor& x) { return pow(x, 0.5); }, [](double v) { return std::sqrt(v); }, 0.3, 3, {}},
      {"pow 1.5", [](const Tensor& x) { return pow(x, 1.5); }, [](double v) { return std::pow(v, 1.5); }, 0.3, 3, {}},
      {"pow -1", [](const Tensor& x) { return pow(x, -1); }, [](double v) { return 1 / v; }, 0.5, 3, {}},
      {"pow -2.5", [](const Tensor& x) { return pow(x, -2.5); }, [](double v) { return std::pow(v, -2.5); }, 0.7,
       3, {}},
  };
  return cases;
}

}  // namespace

TEST_CASE("elementwise: unary forward matches the math library") {
  for (const UnaryCase& op : unary_cases()) {
    INFO(op.name);
    Tensor x = test::random_input({3, 7}, 11, op.lo, op.hi);
    require_close(op.f(x), naive_unary(x, op.ref), 2e-6);
  }
  // sigmoid saturates without overflow in either direction.
  Tensor big = Tensor::from_vector<float>({-200, -80, 0, 80, 200}, {5});
  std::vector<float> s = sigmoid(big).to_vector<float>();
  REQUIRE(s == std::vector<float>{0.0f, static_cast<float>(1 / (1 + std::exp(80.0))), 0.5f, 1.0f, 1.0f});
  std::vector<float> t = tanh(big).to_vector<float>();
  REQUIRE(t == std::vector<float>{-1, -1, 0, 1, 1});
}

TEST_CASE("elementwise: gradcheck of unary ops away from their kinks") {
  for (const UnaryCase& op : unary_cases())
    for (const Shape& s : {Shape{5}, Shape{2, 3, 4}, Shape{}}) {
      INFO(op.name << " " << shape_str(s));
      Tensor x = test::random_input(s, 12, op.lo, op.hi, op.kinks, 0.05);
      REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return op.f(in[0]); }, {x});
    }
}

TEST_CASE("elementwise: derivatives at the kinks are the stated values") {
  auto grad_of = [](const std::function<Tensor(const Tensor&)>& f, std::vector<float> at) {
    Tensor x = Tensor::from_vector(at);
    x.set_requires_grad(true);
    f(x).backward(Tensor::ones(x.shape()));
    return x.grad().to_vector<float>();
  };
  REQUIRE(grad_of([](const Tensor& x) { return relu(x); }, {0, -1, 1}) == std::vector<float>{0, 0, 1});
  REQUIRE(grad_of([](const Tensor& x) { return abs(x); }, {0, -1, 1}) == std::vector<float>{0, -1, 1});
  // clamp passes the gradient at its bounds and inside, and blocks it outside.
  REQUIRE(grad_of([](const Tensor& x) { return clamp(x, -0.5, 0.5); }, {-0.5f, 0.5f, 0, -0.6f, 0.6f}) ==
          std::vector<float>{1, 1, 1, 0, 0});
  // min/max ties split the gradient evenly.
  for (bool is_max : {false, true}) {
    Tensor a = Tensor::from_vector<float>({1, 2, 5}, {3}), b = Tensor::from_vector<float>({1, 3, 4}, {3});
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    Tensor y = is_max ? maximum(a, b) : minimum(a, b);
    y.backward(Tensor::ones({3}));
    REQUIRE(a.grad().to_vector<float>() == (is_max ? std::vector<float>{0.5f, 0, 1} : std::vector<float>{0.5f, 1, 0}));
    REQUIRE(b.grad().to_vector<float>() == (is_max ? std::vector<float>{0.5f, 1, 0} : std::vector<float>{0.5f, 0, 1}));
  }
  // Broadcast ties: a scalar tied with two elements collects both halves.
  Tensor s = Tensor::scalar(2.0);
  s.set_requires_grad(true);
  maximum(s, Tensor::from_vector<float>({2, 2, 1}, {3})).backward(Tensor::ones({3}));
  REQUIRE(s.grad().item() == 2.0);
}

TEST_CASE("elementwise: where forward and gradients with broadcasting") {
  Tensor cond = Tensor::from_vector<uint8_t>({1, 0, 1}, {3, 1});
  Tensor a = test::random_input({2, 3, 4}, 13), b = test::random_input({4}, 14);
  Tensor y = where(cond, a, b);
  REQUIRE(y.shape() == Shape{2, 3, 4});
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> want;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) want.push_back(j != 1 ? av[(i * 3 + j) * 4 + k] : bv[k]);
  require_close(y, want, 0);
  REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {a, b});
  // The condition may be the larger operand, and may come from a comparison.
  Tensor c = test::random_input({3, 4}, 15), d = test::random_input({1}, 16);
  REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return where(gt(in[0], in[1]), in[1], in[0]); }, {c, d});
  // Integer values too.
  Tensor ia = Tensor::from_vector<int64_t>({1, 2, 3}, {3}), ib = Tensor::from_vector<int64_t>({-1}, {1});
  REQUIRE(where(Tensor::from_vector<uint8_t>({0, 1, 0}, {3}), ia, ib).to_vector<int64_t>() ==
          std::vector<int64_t>{-1, 2, -1});
}

TEST_CASE("elementwise: round, floor, ceil and sign values; they record nothing") {
  Tensor x = Tensor::from_vector<float>({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f, 2.6f, -2.6f, 0, -3}, {11});
  x.set_requires_grad(true);
  // Halves go to the even neighbour.
  REQUIRE(round(x).to_vector<float>() == std::vector<float>{0, 2, 2, -0.0f, -2, -2, 2, 3, -3, 0, -3});
  REQUIRE(floor(x).to_vector<float>() == std::vector<float>{0, 1, 2, -1, -2, -3, 2, 2, -3, 0, -3});
  REQUIRE(ceil(x).to_vector<float>() == std::vector<float>{1, 2, 3, -0.0f, -1, -2, 3, 3, -2, 0, -3});
  REQUIRE(sign(x).to_vector<float>() == std::vector<float>{1, 1, 1, -1, -1, -1, 1, 1, -1, 0, -1});
  REQUIRE(std::signbit(round(x).to_vector<float>()[3]));
  for (const Tensor& y : {round(x), floor(x), ceil(x), sign(x)}) {
    REQUIRE_FALSE(y.requires_grad());
    REQUIRE(y.grad_fn() == nullptr);
  }
}

TEST_CASE("elementwise: comparisons give u8 without gradient") {
  using Cmp = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::tuple<const char*, Cmp, RefFn>> cmps = {
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }, [](double a, double b) { return a == b; }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }, [](double a, double b) { return a != b; }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }, [](double a, double b) { return a < b; }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }, [](double a, double b) { return a <= b; }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }, [](double a, double b) { return a > b; }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }, [](double a, double b) { return a >= b; }},
  };
  for (const auto& [name, f, ref] : cmps)
    for (const auto& [sa, sb] : kShapePairs) {
      INFO(name << " " << shape_str(sa) << " with " << shape_str(sb));
      // Coarse grids so that ties occur.
      Tensor a = grid_input(sa, 17, 0), b = grid_input(sb, 18, 0);
      Tensor y = f(a, b);
      REQUIRE(y.dtype() == DType::u8);
      REQUIRE_FALSE(y.requires_grad());
      require_close(y, naive_binary(a, b, ref), 0);
      // Integer operands.
      Tensor ia = cast(mul(a, 10.0), DType::i64), ib = cast(mul(b, 10.0), DType::i64);
      require_close(f(ia, ib), naive_binary(ia, ib, ref), 0);
    }
}

TEST_CASE("elementwise: integer dtypes for add, sub, mul, div") {
  for (DType t : {DType::i64, DType::i32}) {
    Tensor a = cast(Tensor::from_vector<float>({7, -7, 9, 0, 5, -6}, {2, 3}), t);
    Tensor b = cast(Tensor::from_vector<float>({2, -2, 0}, {3}), t);
    REQUIRE(add(a, b).dtype() == t);
    REQUIRE(add(a, b).to_vector<int64_t>() == std::vector<int64_t>{9, -9, 9, 2, 3, -6});
    REQUIRE(sub(a, b).to_vector<int64_t>() == std::vector<int64_t>{5, -5, 9, -2, 7, -6});
    REQUIRE(mul(a, b).to_vector<int64_t>() == std::vector<int64_t>{14, 14, 0, 0, -10, 0});
    // Truncation toward zero, and x / 0 defined as 0 rather than a trap.
    REQUIRE(div(a, b).to_vector<int64_t>() == std::vector<int64_t>{3, 3, 0, 0, -2, 0});
    REQUIRE(minimum(a, b).to_vector<int64_t>() == std::vector<int64_t>{2, -7, 0, 0, -2, -6});
    REQUIRE(maximum(a, b).to_vector<int64_t>() == std::vector<int64_t>{7, -2, 9, 2, 5, 0});
  }
  // u8 wraps around as C++ unsigned arithmetic does.
  Tensor u = Tensor::from_vector<uint8_t>({200, 10}, {2});
  REQUIRE(add(u, Tensor::from_vector<uint8_t>({100}, {1})).to_vector<int64_t>() == std::vector<int64_t>{44, 110});
  // Large i64 values stay exact (no round trip through float).
  Tensor big = Tensor::from_vector<int64_t>({(int64_t{1} << 53) + 1}, {1});
  REQUIRE(add(big, big).to_vector<int64_t>()[0] == (int64_t{1} << 54) + 2);
}

TEST_CASE("elementwise: cast between dtypes") {
  Tensor f = Tensor::from_vector<float>({-1.7f, 1.7f, 2.5f, -0.2f, 100}, {5});
  REQUIRE(cast(f, DType::i64).to_vector<int64_t>() == std::vector<int64_t>{-1, 1, 2, 0, 100});
  REQUIRE(cast(f, DType::i32).dtype() == DType::i32);
  REQUIRE(cast(f, DType::i32).to_vector<int64_t>() == std::vector<int64_t>{-1, 1, 2, 0, 100});
  REQUIRE(cast(f, DType::i8).to_vector<int64_t>() == std::vector<int64_t>{-1, 1, 2, 0, 100});
  Tensor i = Tensor::from_vector<int64_t>({-3, 0, 1 << 20}, {3});
  REQUIRE(cast(i, DType::f32).to_vector<float>() == std::vector<float>{-3, 0, 1 << 20});
  REQUIRE(cast(cast(i, DType::i32), DType::i64).to_vector<int64_t>() == std::vector<int64_t>{-3, 0, 1 << 20});
  Tensor u = Tensor::from_vector<uint8_t>({0, 255, 128}, {3});
  REQUIRE(cast(u, DType::f32).to_vector<float>() == std::vector<float>{0, 255, 128});
  REQUIRE(cast(u, DType::i64).shape() == Shape{3});
  // Not recorded.
  Tensor x = test::random_input({3}, 19);
  REQUIRE_FALSE(cast(x, DType::f32).requires_grad());
  REQUIRE_FALSE(cast(x, DType::i64).requires_grad());
}

TEST_CASE("elementwise: sum_to reverses broadcasting") {
  Tensor x = test::random_input({2, 3, 4}, 20);
  Tensor y = sum_to(x, {3, 1});
  REQUIRE(y.shape() == Shape{3, 1});
  std::vector<double> xv = x.to_vector<double>(), want(3, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) want[j] += xv[(i * 3 + j) * 4 + k];
  require_close(y, want, 1e-6);
  REQUIRE(sum_to(x, {}).shape() == Shape{});
  REQUIRE(sum_to(x, {2, 3, 4}).is_same(x));
  REQUIRE_THROWS_AS(sum_to(x, {1, 2, 3, 4}), Error);
}

TEST_CASE("elementwise: errors name the op and both shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  for (const BinaryCase& op : kBinary) {
    INFO(op.name);
    REQUIRE_THROWS_AS(op.f(a, b), Error);
    REQUIRE_THROWS_WITH(op.f(a, b), Catch::Contains(op.name) && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  }
  REQUIRE_THROWS_WITH(lt(a, b), Catch::Contains("lt") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(where(Tensor::zeros({5}, DType::u8), a, a), Catch::Contains("where") && Catch::Contains("[5]"));
  // Mixed dtypes are refused, not silently converted.
  Tensor i = Tensor::zeros({2, 3}, DType::i64);
  REQUIRE_THROWS_WITH(add(a, i), Catch::Contains("add") && Catch::Contains("f32") && Catch::Contains("i64"));
  REQUIRE_THROWS_WITH(mul(i, a), Catch::Contains("mul") && Catch::Contains("dtypes differ"));
  REQUIRE_THROWS_WITH(eq(a, i), Catch::Contains("eq"));
  REQUIRE_THROWS_WITH(where(Tensor::zeros({2, 3}, DType::u8), a, i), Catch::Contains("where"));
  // Unary ops need f32; the condition of where must be u8; clamp needs lo <= hi.
  REQUIRE_THROWS_WITH(exp(i), Catch::Contains("exp") && Catch::Contains("i64"));
  REQUIRE_THROWS_WITH(relu(i), Catch::Contains("relu"));
  REQUIRE_THROWS_WITH(round(i), Catch::Contains("round"));
  REQUIRE_THROWS_WITH(where(a, a, a), Catch::Contains("where") && Catch::Contains("u8"));
  REQUIRE_THROWS_WITH(clamp(a, 1, 0), Catch::Contains("clamp"));
}
