// Dropout: scale, drop rate, reproducibility across seeds and thread counts, gradient, errors.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops/dropout.h"
#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

#define REQUIRE_OP_ERROR(expr, what)                  \
  do {                                                \
    REQUIRE_THROWS_AS(expr, lowbit::Error);           \
    REQUIRE_THROWS_WITH(expr, Catch::Contains(what)); \
  } while (0)

TEST_CASE("dropout: p = 0 or eval returns the input, p = 1 gives zeros") {
  Tensor x = test::random_input({3, 4}, 1);
  Generator gen(1);
  REQUIRE(dropout(x, 0.0, true, gen).is_same(x));
  REQUIRE(dropout(x, 0.5, false, gen).is_same(x));
  REQUIRE(gen.offset() == 0);
  Tensor y = dropout(x, 1.0, true, gen);
  for (float v : y.to_vector<float>()) REQUIRE(v == 0.0f);
  y.backward(Tensor::ones({3, 4}));
  for (float v : x.grad().to_vector<float>()) REQUIRE(v == 0.0f);
}

TEST_CASE("dropout: drops about p of a large tensor and keeps the mean") {
  const int64_t n = 200000;
  for (double p : {0.1, 0.5, 0.8}) {
    INFO("p = " << p);
    Generator gen(2);
    std::vector<float> y = dropout(Tensor::ones({n}), p, true, gen).to_vector<float>();
    REQUIRE(gen.offset() == static_cast<uint64_t>((n + 3) / 4));
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    int64_t zeros = 0;
    double total = 0;
    for (float v : y) {
      if (v == 0.0f)
        ++zeros;
      else
        REQUIRE(v == scale);
      total += v;
    }
    REQUIRE(double(zeros) / n == Approx(p).margin(0.01));
    REQUIRE(total / n == Approx(1.0).margin(0.02));
  }
}

TEST_CASE("dropout: the mask is the generator's uniform draw, the same for the same seed") {
  Tensor x = Tensor::ones({7, 9});
  Generator g1(3), g2(3), g3(4), ref(3);
  std::vector<float> a = dropout(x, 0.3, true, g1).to_vector<float>();
  std::vector<float> b = dropout(x, 0.3, true, g2).to_vector<float>();
  std::vector<float> c = dropout(x, 0.3, true, g3).to_vector<float>();
  REQUIRE(a == b);
  REQUIRE(a != c);
  // Element i is dropped iff Tensor::rand's i-th value is below p.
  std::vector<float> u = Tensor::rand({7, 9}, ref).to_vector<float>();
  for (size_t i = 0; i < u.size(); ++i) REQUIRE((a[i] == 0.0f) == (u[i] < 0.3f));
  REQUIRE(ref.offset() == g1.offset());
  // A second call draws a fresh mask.
  REQUIRE(dropout(x, 0.3, true, g1).to_vector<float>() != a);
}

TEST_CASE("dropout: the mask does not depend on the thread count") {
  Tensor x = test::random_input({300, 401}, 4);
  auto run = [&](int threads) {
    set_num_threads(threads);
    Generator gen(5);
    return dropout(x, 0.4, true, gen).to_vector<float>();
  };
  int before = get_num_threads();
  std::vector<float> one = run(1), two = run(2);
  set_num_threads(before);
  REQUIRE(one == two);
}

TEST_CASE("dropout: the gradient is the same mask times the scale") {
  Tensor x = test::random_input({5, 13}, 6, 0.5, 1.5);  // non-zero, so y == 0 marks a drop
  Generator gen(7);
  Tensor y = dropout(x, 0.25, true, gen);
  Generator wg(8);
  Tensor dy = Tensor::rand({5, 13}, wg, -1, 1);
  y.backward(dy);
  std::vector<float> yv = y.to_vector<float>(), gv = x.grad().to_vector<float>(), dv = dy.to_vector<float>();
  const float scale = static_cast<float>(1.0 / 0.75);
  for (size_t i = 0; i < yv.size(); ++i) REQUIRE(gv[i] == (yv[i] == 0.0f ? 0.0f : dv[i] * scale));

  // Finite differences, with a fresh generator (the same mask) on every call.
  for (Shape shape : {Shape{3, 5}, Shape{2, 3, 7}}) {
    REQUIRE_GRADCHECK(
        [](const std::vector<Tensor>& in) {
          Generator g(9);
          return dropout(in[0], 0.5, true, g);
        },
        {test::random_input(shape, 10)});
  }
}

TEST_CASE("dropout: bad probabilities and dtypes are errors naming the op") {
  Tensor x = Tensor::ones({2, 3});
  Generator gen(1);
  REQUIRE_OP_ERROR(dropout(x, -0.1, true, gen), "dropout");
  REQUIRE_OP_ERROR(dropout(x, 1.5, true, gen), "[2, 3]");
  REQUIRE_OP_ERROR(dropout(x, std::nan(""), true, gen), "dropout");
  REQUIRE_OP_ERROR(dropout(Tensor::ones({2, 3}, DType::i64), 0.5, true, gen), "f32");
}
