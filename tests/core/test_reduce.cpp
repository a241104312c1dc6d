// Reductions: sum, mean, max, min, var, logsumexp, argmax/argmin against naive loops,
// gradients, keepdim and axis handling, thread-count determinism, errors.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>

#include <catch2/catch.hpp>

#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {

// The values of x grouped by output element (each group in row-major order of x, which
// is the order of the flat index within the reduced sub-space), and the output shape.
struct Groups {
  Shape shape;
  std::vector<std::vector<double>> values;
};

Groups group_by_output(const Tensor& x, Axes axes, bool keepdim) {
  const Shape& s = x.shape();
  const int64_t nd = x.dim();
  if (axes.empty())
    for (int64_t i = 0; i < nd; ++i) axes.push_back(i);
  for (int64_t& a : axes) a = a < 0 ? a + nd : a;
  auto reduced = [&](int64_t d) { return std::find(axes.begin(), axes.end(), d) != axes.end(); };
  Groups g;
  for (int64_t d = 0; d < nd; ++d) {
    if (!reduced(d)) g.shape.push_back(s[d]);
    else if (keepdim) g.shape.push_back(1);
  }
  g.values.resize(static_cast<size_t>(numel(g.shape)));
  std::vector<double> xv = x.to_vector<double>();
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  for (size_t flat = 0; flat < xv.size(); ++flat) {
    int64_t o = 0;
    for (int64_t d = 0; d < nd; ++d)
      if (!reduced(d)) o = o * s[d] + idx[d];
    g.values[static_cast<size_t>(o)].push_back(xv[flat]);
    for (int64_t d = nd; d-- > 0;) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
  return g;
}

Tensor vec(const std::vector<float>& v) { return Tensor::from_vector(v); }

using GroupFn = std::function<double(const std::vector<double>&)>;

double ref_sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }
double ref_mean(const std::vector<double>& v) { return ref_sum(v) / static_cast<double>(v.size()); }
double ref_max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double ref_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double ref_argmax(const std::vector<double>& v) { return static_cast<double>(std::max_element(v.begin(), v.end()) - v.begin()); }
double ref_argmin(const std::vector<double>& v) { return static_cast<double>(std::min_element(v.begin(), v.end()) - v.begin()); }
GroupFn ref_var(int64_t correction) {
  return [correction](const std::vector<double>& v) {
    double m = ref_mean(v), s = 0;
    for (double a : v) s += (a - m) * (a - m);
    return s / static_cast<double>(static_cast<int64_t>(v.size()) - correction);
  };
}
double ref_logsumexp(const std::vector<double>& v) {
  double m = ref_max(v), s = 0;
  for (double a : v) s += std::exp(a - m);
  return m + std::log(s);
}

void require_matches(const Tensor& y, const Tensor& x, const Axes& axes, bool keepdim, const GroupFn& f,
                     double tol = 1e-5) {
  Groups g = group_by_output(x, axes, keepdim);
  REQUIRE(y.shape() == g.shape);
  std::vector<double> yv = y.to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) {
    double want = f(g.values[i]);
    INFO("output " << i << " of " << shape_str(y.shape()));
    REQUIRE(yv[i] == Approx(want).margin(tol).epsilon(tol));
  }
}

// Distinct values 0.1 apart in random order, so a finite-difference step never
// changes which element is the extreme.
Tensor distinct_input(const Shape& shape, uint64_t seed) {
  Tensor t = test::random_input(shape, seed);
  std::vector<float> r = t.to_vector<float>();
  std::vector<size_t> order(r.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r[a] < r[b]; });
  float* p = t.data<float>();
  for (size_t k = 0; k < order.size(); ++k) p[order[k]] = 0.1f * static_cast<float>(k) - 1.0f;
  return t;
}

const std::vector<Axes> kAxisSets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {-3, -1}, {1, 2}, {0, 1}, {0, 1, 2}, {2, 0}};

}  // namespace

TEST_CASE("reduce: sum, mean, max, min over every axis set, keepdim or not") {
  Tensor x = test::random_input({3, 4, 5}, 11, -2, 2);
  for (const Axes& ax : kAxisSets)
    for (bool keep : {false, true}) {
      INFO("axes size " << ax.size() << " keepdim " << keep);
      require_matches(sum(x, ax, keep), x, ax, keep, ref_sum);
      require_matches(mean(x, ax, keep), x, ax, keep, ref_mean);
      require_matches(max(x, ax, keep), x, ax, keep, ref_max, 0);
      require_matches(min(x, ax, keep), x, ax, keep, ref_min, 0);
      require_matches(logsumexp(x, ax, keep), x, ax, keep, ref_logsumexp);
      for (int64_t c : {0, 1, 2}) require_matches(var(x, ax, keep, c), x, ax, keep, ref_var(c));
    }
}

TEST_CASE("reduce: all axes gives a 0-d tensor, keepdim all ones") {
  Tensor x = test::random_input({2, 3}, 3);
  REQUIRE(sum(x).shape() == Shape{});
  REQUIRE(sum(x, {}, true).shape() == Shape{1, 1});
  REQUIRE(var(x).shape() == Shape{});
  REQUIRE(mean(x, {0, 1}).item() == Approx(ref_mean(x.to_vector<double>())).margin(1e-6));
  // A 0-d tensor reduces to itself.
  Tensor s = Tensor::scalar(4.5);
  REQUIRE(sum(s).item() == 4.5);
  REQUIRE(max(s).item() == 4.5);
}

TEST_CASE("reduce: shapes with size-1 axes and long rows") {
  // Size-1 axes are dropped by the kernel's plan; rows longer than one column chunk
  // exercise the row-wise path.
  struct Case {
    Shape shape;
    std::vector<Axes> axes;
  };
  const std::vector<Case> cases = {{{1, 7, 1, 3}, {{0}, {1}, {-1}, {0, 2}, {1, 3}}},
                                   {{5, 1, 600}, {{0}, {2}, {0, 1}}},
                                   {{3, 700}, {{0}, {1}}},
                                   {{700, 3}, {{0}, {1}}},
                                   {{2, 3, 4, 5}, {{0, 2}, {1, 3}, {0, 3}}}};
  for (const Case& c : cases) {
    Tensor x = test::random_input(c.shape, 21, -1, 1);
    for (const Axes& ax : c.axes) {
      INFO("shape " << shape_str(c.shape) << " first axis " << ax[0]);
      require_matches(sum(x, ax), x, ax, false, ref_sum);
      require_matches(var(x, ax, true, 0), x, ax, true, ref_var(0));
      require_matches(logsumexp(x, ax), x, ax, false, ref_logsumexp);
      require_matches(max(x, ax), x, ax, false, ref_max, 0);
    }
  }
}

TEST_CASE("reduce: argmax, argmin and max_with_indices") {
  Tensor x = test::random_input({3, 4, 5}, 5);
  for (int64_t axis : {0, 1, 2, -1, -2}) {
    for (bool keep : {false, true}) {
      Tensor am = argmax(x, axis, keep);
      REQUIRE(am.dtype() == DType::i64);
      require_matches(am, x, {axis}, keep, ref_argmax, 0);
      require_matches(argmin(x, axis, keep), x, {axis}, keep, ref_argmin, 0);
      auto [v, i] = max_with_indices(x, axis, keep);
      require_matches(v, x, {axis}, keep, ref_max, 0);
      require_matches(i, x, {axis}, keep, ref_argmax, 0);
      auto [vn, in] = min_with_indices(x, axis, keep);
      require_matches(vn, x, {axis}, keep, ref_min, 0);
      require_matches(in, x, {axis}, keep, ref_argmin, 0);
    }
  }
  // Ties go to the first index, NaN wins and propagates.
  Tensor t = Tensor::from_vector<float>({1, 3, 3, 2, 0, 0, -1, 0}, {2, 4});
  REQUIRE(argmax(t, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  REQUIRE(argmin(t, 1).to_vector<int64_t>() == std::vector<int64_t>{0, 2});
  Tensor n = Tensor::from_vector<float>({1, NAN, 5, NAN}, {4});
  REQUIRE(argmax(n, 0).item<int64_t>() == 1);
  REQUIRE(std::isnan(max(n).item()));
  REQUIRE(argmax(x, 1).requires_grad() == false);
}

TEST_CASE("reduce: extremes of long runs with ties, infinities and NaN") {
  std::vector<float> v(1000, 0.0f);
  v[700] = v[900] = 5;
  v[600] = v[800] = -5;
  REQUIRE(argmax(vec(v), 0).item<int64_t>() == 700);
  REQUIRE(argmin(vec(v), 0).item<int64_t>() == 600);
  v[50] = INFINITY;
  v[60] = -INFINITY;
  REQUIRE(max(vec(v)).item() == INFINITY);
  REQUIRE(argmax(vec(v), 0).item<int64_t>() == 50);
  REQUIRE(argmin(vec(v), 0).item<int64_t>() == 60);
  v[999] = v[998] = NAN;
  REQUIRE(argmax(vec(v), 0).item<int64_t>() == 998);
  REQUIRE(argmin(vec(v), 0).item<int64_t>() == 998);
  REQUIRE(std::isnan(min(vec(v)).item()));
  REQUIRE(argmax(vec(std::vector<float>(100, -INFINITY)), 0).item<int64_t>() == 0);
  // Slices longer than a block of the kernel: blocks are combined keeping the first index.
  Tensor big = Tensor::zeros({3, 100000});
  float* p = big.data<float>();
  p[70000] = p[90000] = 2;       // row 0: a tie across blocks
  p[100000 + 99999] = 3;         // row 1: the last element
  p[200000 + 40000] = NAN;       // row 2: NaN in a later block
  p[200000 + 5] = 9;
  REQUIRE(argmax(big, 1).to_vector<int64_t>() == std::vector<int64_t>{70000, 99999, 40000});
  Tensor idx = max_with_indices(big.reshape({300000}), 0).second;
  REQUIRE(idx.item<int64_t>() == 240000);
}

TEST_CASE("reduce: max/min send the gradient to the first extreme element") {
  Tensor x = Tensor::from_vector<float>({1, 3, 3, 2, -1, -1}, {2, 3});
  x.set_requires_grad(true);
  sum(max(x, {1})).backward();
  REQUIRE(x.grad().to_vector<float>() == std::vector<float>{0, 1, 0, 1, 0, 0});
  x.zero_grad();
  sum(min(x, {1})).backward();
  REQUIRE(x.grad().to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1, 0});
}

TEST_CASE("reduce: gradcheck of sum, mean, var, logsumexp") {
  for (const Axes& ax : kAxisSets) {
    for (bool keep : {false, true}) {
      INFO("axes size " << ax.size() << " keepdim " << keep);
      Tensor x = test::random_input({3, 4, 5}, 7);
      REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return sum(in[0], ax, keep); }, {x});
      REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return mean(in[0], ax, keep); }, {x});
      REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return logsumexp(in[0], ax, keep); }, {x});
      for (int64_t c : {0, 1})
        REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return var(in[0], ax, keep, c); }, {x});
    }
  }
}

TEST_CASE("reduce: gradcheck of max and min with distinct values") {
  for (const Axes& ax : kAxisSets) {
    for (bool keep : {false, true}) {
      Tensor x = distinct_input({3, 4, 5}, 9);
      REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return max(in[0], ax, keep); }, {x});
      REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return min(in[0], ax, keep); }, {x});
    }
  }
  Tensor x = distinct_input({4, 6}, 10);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return max_with_indices(in[0], 1).first; }, {x});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return min_with_indices(in[0], 0, true).first; }, {x});
}

TEST_CASE("reduce: composite gradients through reductions") {
  // (x - mean)^2 averaged equals var with correction 0: both paths give the same gradient.
  Tensor x = test::random_input({4, 5}, 17);
  REQUIRE_GRADCHECK(
      [](const std::vector<Tensor>& in) {
        Tensor d = in[0] - mean(in[0], {1}, true);
        return add(var(in[0], {1}, false, 0), mean(d * d, {1}));
      },
      {x});
}

TEST_CASE("reduce: var and logsumexp numerics") {
  // Two-pass variance: a large common offset does not cancel the result away.
  Tensor x = Tensor::from_vector<float>({10000.5f, 10001.5f, 10002.5f, 10003.5f}, {4});
  REQUIRE(var(x).item() == Approx(5.0 / 3.0).epsilon(1e-6));
  REQUIRE(var(x, {}, false, 0).item() == Approx(1.25).epsilon(1e-6));
  // Too few elements for the correction: NaN (0 / 0), as torch.var.
  REQUIRE(std::isnan(var(vec({3.0f})).item()));
  // logsumexp of huge values does not overflow; of -inf is -inf.
  Tensor big = vec({10000, 10000, 9999});
  REQUIRE(logsumexp(big).item() == Approx(10000 + std::log(2 + std::exp(-1.0))).epsilon(1e-7));
  Tensor ninf = vec({-INFINITY, -INFINITY});
  REQUIRE(logsumexp(ninf).item() == -INFINITY);
  Tensor pinf = vec({1, INFINITY});
  REQUIRE(logsumexp(pinf).item() == INFINITY);
  // The gradient of logsumexp is the softmax.
  Tensor v = vec({1, 2, 3});
  v.set_requires_grad(true);
  logsumexp(v).backward();
  std::vector<float> g = v.grad().to_vector<float>();
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  for (int i = 0; i < 3; ++i) REQUIRE(g[i] == Approx(std::exp(i + 1.0) / z).epsilon(1e-6));
}

TEST_CASE("reduce: empty slices") {
  Tensor e = Tensor::zeros({0, 3});
  REQUIRE(sum(e, {0}).to_vector<float>() == std::vector<float>{0, 0, 0});
  REQUIRE(std::isnan(mean(e, {0}).at({0})));
  REQUIRE(sum(e, {1}).shape() == Shape{0});
  REQUIRE_THROWS_AS(max(e, {0}), Error);
}

TEST_CASE("reduce: results are bit-identical for 1 and 2 threads on a large tensor") {
  Generator gen(42);
  Tensor x = Tensor::randn({1024, 1024}, gen);
  const int saved = get_num_threads();
  auto run_all = [&] {
    std::vector<Tensor> r;
    for (const Axes& ax : std::vector<Axes>{{}, {0}, {1}}) {
      r.push_back(sum(x, ax));
      r.push_back(mean(x, ax));
      r.push_back(var(x, ax));
      r.push_back(logsumexp(x, ax));
      r.push_back(max(x, ax));
      r.push_back(min(x, ax));
    }
    r.push_back(argmax(x, 0));
    r.push_back(sum(x.reshape({64, 16, 1024}), {0, 2}));
    return r;
  };
  set_num_threads(1);
  std::vector<Tensor> one = run_all();
  set_num_threads(2);
  std::vector<Tensor> two = run_all();
  set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) {
    INFO("result " << i);
    REQUIRE(one[i].nbytes() == two[i].nbytes());
    REQUIRE(std::memcmp(one[i].raw_data(), two[i].raw_data(), one[i].nbytes()) == 0);
  }
  // And the full sum is accurate (accumulated in double).
  double want = ref_sum(x.to_vector<double>());
  REQUIRE(one[0].item() == Approx(want).margin(1e-3));
}

TEST_CASE("reduce: errors name the op") {
  Tensor x = test::random_input({3, 4, 5}, 1);
  REQUIRE_THROWS_AS(sum(x, {0, 0}), Error);
  REQUIRE_THROWS_WITH(sum(x, {1, -2}), Catch::Contains("sum") && Catch::Contains("repeated"));
  REQUIRE_THROWS_WITH(mean(x, {3}), Catch::Contains("mean") && Catch::Contains("out of range"));
  REQUIRE_THROWS_WITH(max(x, {-4}), Catch::Contains("max") && Catch::Contains("out of range"));
  REQUIRE_THROWS_WITH(var(x, {5}), Catch::Contains("var"));
  REQUIRE_THROWS_WITH(logsumexp(x, {0, 3}), Catch::Contains("logsumexp"));
  REQUIRE_THROWS_WITH(argmax(x, 3), Catch::Contains("max"));
  Tensor i = Tensor::zeros({3}, DType::i64);
  REQUIRE_THROWS_WITH(sum(i), Catch::Contains("sum") && Catch::Contains("i64"));
  REQUIRE_THROWS_WITH(var(i), Catch::Contains("var") && Catch::Contains("i64"));
}
