// Pooling: forward against naive loops, finite-difference gradients, output sizes, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/ops/pool.h"
#include "core/ops/reduce.h"
#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

#define REQUIRE_OP_ERROR(expr, op)                  \
  do {                                              \
    REQUIRE_THROWS_AS(expr, lowbit::Error);         \
    REQUIRE_THROWS_WITH(expr, Catch::Contains(op)); \
  } while (0)

namespace {

// Values 0.05 apart in a random order, so no two elements of a window are within a
// finite-difference step of each other (the arg-max never flips).
Tensor distinct_input(const Shape& shape, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.05f * static_cast<float>(i) - 1.0f;
  Generator gen(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[gen.below(i)]);
  Tensor t = Tensor::from_vector(v, shape);
  t.set_requires_grad(true);
  return t;
}

struct Dims {
  int64_t planes, h, w;
};
Dims dims_of(const Tensor& x) { return {x.numel() / (x.size(-2) * x.size(-1)), x.size(-2), x.size(-1)}; }

int64_t stride_of(const Pool2dOptions& o, int a) { return o.stride[a] ? o.stride[a] : o.kernel[a]; }

// Naive pooling: visit every tap of every window, skipping those outside the input.
// mode 0 = max, 1 = avg (count_include_pad per opt).
std::vector<float> naive_pool(const Tensor& x, const Pool2dOptions& o, int64_t oh, int64_t ow, int mode) {
  Dims d = dims_of(x);
  std::vector<float> xv = x.to_vector<float>(), out;
  for (int64_t p = 0; p < d.planes; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        double best = -std::numeric_limits<double>::infinity(), acc = 0;
        int64_t count = 0, padded = 0;
        for (int64_t a = 0; a < o.kernel[0]; ++a)
          for (int64_t b = 0; b < o.kernel[1]; ++b) {
            int64_t h = i * stride_of(o, 0) - o.padding[0] + a * o.dilation[0];
            int64_t w = j * stride_of(o, 1) - o.padding[1] + b * o.dilation[1];
            if (h < d.h + o.padding[0] && w < d.w + o.padding[1]) ++padded;
            if (h < 0 || w < 0 || h >= d.h || w >= d.w) continue;
            double v = xv[static_cast<size_t>((p * d.h + h) * d.w + w)];
            best = std::max(best, v);
            acc += v;
            ++count;
          }
        out.push_back(
            static_cast<float>(mode == 0 ? best : acc / static_cast<double>(o.count_include_pad ? padded : count)));
      }
  return out;
}

std::vector<float> naive_adaptive(const Tensor& x, int64_t oh, int64_t ow) {
  Dims d = dims_of(x);
  std::vector<float> xv = x.to_vector<float>(), out;
  for (int64_t p = 0; p < d.planes; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        int64_t h0 = static_cast<int64_t>(std::floor(double(i) * d.h / oh));
        int64_t h1 = static_cast<int64_t>(std::ceil(double(i + 1) * d.h / oh));
        int64_t w0 = static_cast<int64_t>(std::floor(double(j) * d.w / ow));
        int64_t w1 = static_cast<int64_t>(std::ceil(double(j + 1) * d.w / ow));
        double acc = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) acc += xv[static_cast<size_t>((p * d.h + h) * d.w + w)];
        out.push_back(static_cast<float>(acc / static_cast<double>((h1 - h0) * (w1 - w0))));
      }
  return out;
}

void require_close(const std::vector<float>& a, const std::vector<float>& b, double tol = 1e-6) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i);
    REQUIRE(a[i] == Approx(b[i]).margin(tol));
  }
}

Pool2dOptions opts(std::array<int64_t, 2> k, std::array<int64_t, 2> s, std::array<int64_t, 2> p,
                   std::array<int64_t, 2> d = {1, 1}, bool ceil = false, bool include_pad = true) {
  Pool2dOptions o;
  o.kernel = k;
  o.stride = s;
  o.padding = p;
  o.dilation = d;
  o.ceil_mode = ceil;
  o.count_include_pad = include_pad;
  return o;
}

}  // namespace

TEST_CASE("pool: max_pool2d on a known input") {
  Tensor x = Tensor::arange(0, 16, 1, DType::f32).reshape({1, 1, 4, 4});
  Tensor y = max_pool2d(x, Pool2dOptions::square(2));
  REQUIRE(y.shape() == Shape{1, 1, 2, 2});
  REQUIRE(y.to_vector<float>() == std::vector<float>{5, 7, 13, 15});
  Tensor a = avg_pool2d(x, Pool2dOptions::square(2));
  REQUIRE(a.to_vector<float>() == std::vector<float>{2.5f, 4.5f, 10.5f, 12.5f});
  REQUIRE(global_avg_pool2d(x).to_vector<float>() == std::vector<float>{7.5f});
  REQUIRE(global_avg_pool2d(x).shape() == Shape{1, 1, 1, 1});
  // NaN propagates; a window of -inf still routes its gradient to an element.
  const float inf = std::numeric_limits<float>::infinity();
  Tensor z = Tensor::from_vector<float>({1, std::nanf(""), -inf, -inf, 2, 3, -inf, -inf}, {1, 1, 2, 4});
  z.set_requires_grad(true);
  Tensor m = max_pool2d(z, Pool2dOptions::square(2));
  REQUIRE(std::isnan(m.at({0, 0, 0, 0})));
  REQUIRE(m.at({0, 0, 0, 1}) == -inf);
  m.backward(Tensor::ones({1, 1, 1, 2}));
  REQUIRE(z.grad().to_vector<float>() == std::vector<float>{0, 1, 1, 0, 0, 0, 0, 0});
}

TEST_CASE("pool: output sizes follow torch, ceil_mode included") {
  Tensor x = Tensor::zeros({1, 1, 5, 6});
  // H=5: k2 s2 floor -> 2, ceil -> 3. W=6: k3 s2 p1 floor -> 3, ceil -> 4.
  REQUIRE(max_pool2d(x, opts({2, 3}, {2, 2}, {0, 1})).shape() == Shape{1, 1, 2, 3});
  REQUIRE(max_pool2d(x, opts({2, 3}, {2, 2}, {0, 1}, {1, 1}, true)).shape() == Shape{1, 1, 3, 4});
  // H=5, k2 s2 p1 ceil: the 4th window would start in the right padding, so 3.
  REQUIRE(avg_pool2d(x, opts({2, 2}, {2, 2}, {1, 1}, {1, 1}, true)).shape() == Shape{1, 1, 3, 4});
  // Dilation widens the window: k3 d2 spans 5.
  REQUIRE(max_pool2d(x, opts({3, 3}, {1, 1}, {0, 0}, {2, 2})).shape() == Shape{1, 1, 1, 2});
  // 3-D input [C, H, W].
  REQUIRE(max_pool2d(Tensor::zeros({3, 4, 4}), Pool2dOptions::square(2)).shape() == Shape{3, 2, 2});
}

TEST_CASE("pool: forward matches naive loops") {
  struct Case {
    Shape shape;
    Pool2dOptions o;
  };
  std::vector<Case> cases = {
      {{2, 3, 6, 6}, Pool2dOptions::square(2)},
      {{2, 2, 7, 5}, opts({3, 3}, {2, 2}, {1, 1})},
      {{1, 3, 7, 8}, opts({3, 2}, {2, 1}, {1, 0}, {1, 1}, true)},
      {{1, 2, 6, 7}, opts({2, 3}, {2, 2}, {1, 1}, {1, 1}, true, false)},
      {{2, 2, 9, 9}, opts({3, 3}, {2, 3}, {1, 0}, {2, 2})},
      {{3, 5, 5}, opts({3, 3}, {1, 1}, {1, 1})},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    INFO("case " << k);
    const Case& c = cases[k];
    Tensor x = test::random_input(c.shape, 10 + k, -2, 2);
    Tensor ym = max_pool2d(x, c.o);
    int64_t oh = ym.size(-2), ow = ym.size(-1);
    require_close(ym.to_vector<float>(), naive_pool(x, c.o, oh, ow, 0));
    if (c.o.dilation[0] == 1 && c.o.dilation[1] == 1) {
      Tensor ya = avg_pool2d(x, c.o);
      require_close(ya.to_vector<float>(), naive_pool(x, c.o, oh, ow, 1));
      Pool2dOptions ex = c.o;
      ex.count_include_pad = !ex.count_include_pad;
      require_close(avg_pool2d(x, ex).to_vector<float>(), naive_pool(x, ex, oh, ow, 1));
    }
  }
}

TEST_CASE("pool: adaptive_avg_pool2d uses torch's bins") {
  Tensor x = test::random_input({2, 3, 7, 10}, 3);
  for (auto [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {1, 1}, {7, 10}, {5, 3}, {9, 12}}) {
    INFO(oh << "x" << ow);
    Tensor y = adaptive_avg_pool2d(x, oh, ow);
    REQUIRE(y.shape() == Shape{2, 3, oh, ow});
    require_close(y.to_vector<float>(), naive_adaptive(x, oh, ow));
  }
  require_close(global_avg_pool2d(x).to_vector<float>(), mean(x, {2, 3}).to_vector<float>());
}

TEST_CASE("pool: max_pool2d routes the gradient to the arg-max") {
  Tensor x = Tensor::from_vector<float>({1, 9, 2, 3, 4, 8, 7, 6, 5}, {1, 1, 3, 3});
  x.set_requires_grad(true);
  // Overlapping 2x2 windows, stride 1: 9 wins twice, 7 and 8 once.
  Tensor y = max_pool2d(x, opts({2, 2}, {1, 1}, {0, 0}));
  REQUIRE(y.to_vector<float>() == std::vector<float>{9, 9, 7, 8});
  y.backward(Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2}));
  REQUIRE(x.grad().to_vector<float>() == std::vector<float>{0, 3, 0, 0, 0, 4, 3, 0, 0});
}

TEST_CASE("pool: max_pool2d gradcheck") {
  std::vector<std::pair<Shape, Pool2dOptions>> cases = {
      {{2, 2, 4, 4}, Pool2dOptions::square(2)},
      {{1, 2, 5, 5}, opts({3, 3}, {2, 2}, {1, 1})},
      {{1, 1, 5, 6}, opts({2, 3}, {1, 2}, {1, 1}, {1, 1}, true)},
      {{1, 2, 6, 6}, opts({2, 2}, {1, 2}, {0, 1}, {2, 2})},
      {{2, 4, 4}, opts({3, 3}, {1, 1}, {1, 1})},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    INFO("case " << k);
    Pool2dOptions o = cases[k].second;
    REQUIRE_GRADCHECK([o](const std::vector<Tensor>& in) { return max_pool2d(in[0], o); },
                      {distinct_input(cases[k].first, 20 + k)});
  }
}

TEST_CASE("pool: avg_pool2d and adaptive pooling gradcheck") {
  std::vector<std::pair<Shape, Pool2dOptions>> cases = {
      {{2, 2, 4, 4}, Pool2dOptions::square(2)},
      {{1, 2, 5, 5}, opts({3, 3}, {2, 2}, {1, 1})},
      {{1, 2, 5, 6}, opts({2, 3}, {2, 2}, {1, 1}, {1, 1}, true, false)},
      {{1, 1, 5, 5}, opts({2, 2}, {2, 2}, {1, 1}, {1, 1}, true, true)},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    INFO("case " << k);
    Pool2dOptions o = cases[k].second;
    REQUIRE_GRADCHECK([o](const std::vector<Tensor>& in) { return avg_pool2d(in[0], o); },
                      {test::random_input(cases[k].first, 30 + k)});
  }
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 3, 2); },
                    {test::random_input({2, 2, 5, 4}, 40)});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 4, 5); },
                    {test::random_input({1, 2, 3, 3}, 41)});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return global_avg_pool2d(in[0]); },
                    {test::random_input({2, 3, 3, 4}, 42)});
}

TEST_CASE("pool: results do not depend on the thread count") {
  Tensor x = test::random_input({8, 16, 12, 12}, 50);
  Generator gen(51);
  Tensor dy = Tensor::rand({8, 16, 6, 6}, gen);
  auto run = [&](int threads) {
    set_num_threads(threads);
    x.zero_grad();
    avg_pool2d(x, opts({3, 3}, {2, 2}, {1, 1})).backward(dy);
    std::vector<float> g = x.grad().to_vector<float>();
    x.zero_grad();
    max_pool2d(x, opts({3, 3}, {2, 2}, {1, 1})).backward(dy);
    std::vector<float> h = x.grad().to_vector<float>();
    g.insert(g.end(), h.begin(), h.end());
    return g;
  };
  int before = get_num_threads();
  std::vector<float> one = run(1), two = run(2);
  set_num_threads(before);
  REQUIRE(one == two);
}

TEST_CASE("pool: bad shapes and options are errors naming the op") {
  Tensor x = Tensor::zeros({1, 2, 4, 4});
  REQUIRE_OP_ERROR(max_pool2d(Tensor::zeros({4, 4}), Pool2dOptions::square(2)), "max_pool2d");
  REQUIRE_OP_ERROR(max_pool2d(Tensor::zeros({1, 1, 1, 4, 4}), Pool2dOptions::square(2)), "[1, 1, 1, 4, 4]");
  REQUIRE_OP_ERROR(max_pool2d(Tensor::zeros({1, 1, 4, 4}, DType::i32), Pool2dOptions::square(2)), "f32");
  REQUIRE_OP_ERROR(max_pool2d(x, Pool2dOptions::square(5)), "larger than the padded input");
  REQUIRE_OP_ERROR(max_pool2d(x, Pool2dOptions::square(5)), "[1, 2, 4, 4]");
  REQUIRE_OP_ERROR(avg_pool2d(x, Pool2dOptions::square(7, 1, 1)), "avg_pool2d");
  REQUIRE_OP_ERROR(max_pool2d(x, opts({3, 3}, {1, 1}, {0, 0}, {2, 2})), "dilation");
  REQUIRE_OP_ERROR(max_pool2d(x, Pool2dOptions::square(2, 1, 2)), "half the kernel");
  REQUIRE_OP_ERROR(max_pool2d(x, Pool2dOptions::square(0)), "kernel");
  REQUIRE_OP_ERROR(max_pool2d(x, Pool2dOptions::square(2, -1)), "stride");
  REQUIRE_OP_ERROR(avg_pool2d(x, opts({2, 2}, {2, 2}, {0, 0}, {2, 2})), "avg_pool2d");
  REQUIRE_OP_ERROR(adaptive_avg_pool2d(x, 0, 2), "adaptive_avg_pool2d");
  REQUIRE_OP_ERROR(adaptive_avg_pool2d(Tensor::zeros({4, 4}), 2, 2), "adaptive_avg_pool2d");
  REQUIRE_OP_ERROR(global_avg_pool2d(Tensor::zeros({2, 4, 4})), "global_avg_pool2d");
}
