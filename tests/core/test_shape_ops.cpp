// Shape ops: forward against naive index loops, gradients by finite differences, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;
using Catch::Matchers::Contains;

namespace {

using Idx = std::vector<int64_t>;

Idx unravel(int64_t flat, const Shape& s) {
  Idx idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = flat % s[d];
    flat /= s[d];
  }
  return idx;
}

int64_t ravel(const Idx& idx, const Shape& s) {
  int64_t f = 0;
  for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + idx[d];
  return f;
}

// A tensor of distinct values 0, 1, 2, ... in dtype t (wrapping for 8-bit types).
Tensor iota(const Shape& s, DType t = DType::f32) {
  return Tensor::arange(0, static_cast<double>(numel(s))).reshape(s).to(t);
}

Tensor rnd(const Shape& s, uint64_t seed) {
  Generator gen(seed);
  return Tensor::rand(s, gen, -1, 1);
}

// The message of the lowbit::Error f throws ("" if none), for checking what it names.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

using Ins = std::vector<Tensor>;

}  // namespace

TEST_CASE("expand: forward, gradient with leading new axes, errors") {
  struct Case {
    Shape from, to;
  };
  for (const Case& c : {Case{{3}, {2, 4, 3}}, Case{{2, 1, 3}, {5, 2, 4, 3}}, Case{{1}, {3, 2}},
                        Case{{4, 1}, {4, 5}}, Case{{}, {2, 3}}}) {
    Tensor x = rnd(c.from, 3);
    Tensor y = expand(x, c.to);
    REQUIRE(y.shape() == c.to);
    std::vector<float> xv = x.to_vector<float>(), yv = y.to_vector<float>();
    const size_t lead = c.to.size() - c.from.size();
    for (int64_t f = 0; f < y.numel(); ++f) {
      Idx i = unravel(f, c.to), j;
      for (size_t d = 0; d < c.from.size(); ++d) j.push_back(c.from[d] == 1 ? 0 : i[lead + d]);
      REQUIRE(yv[f] == xv[ravel(j, c.from)]);
    }
    Tensor xi = test::random_input(c.from, 7);
    REQUIRE_GRADCHECK([&](const Ins& in) { return expand(in[0], c.to); }, {xi});
  }
  Tensor xi = iota({2, 1}, DType::i64);
  REQUIRE(expand(xi, {2, 3}).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 1, 1, 1});
  REQUIRE_THROWS_AS(expand(rnd({2, 3}, 1), {4, 3}), Error);
  REQUIRE_THAT(error_of([] { expand(rnd({2, 3}, 1), {3}); }), Contains("expand") && Contains("[2, 3]"));
}

TEST_CASE("squeeze and unsqueeze: shapes, values, gradient, errors") {
  Tensor x = rnd({2, 3}, 5);
  REQUIRE(unsqueeze(x, 0).shape() == Shape{1, 2, 3});
  REQUIRE(unsqueeze(x, 2).shape() == Shape{2, 3, 1});
  REQUIRE(unsqueeze(x, -1).shape() == Shape{2, 3, 1});
  REQUIRE(unsqueeze(x, 1).to_vector<float>() == x.to_vector<float>());
  REQUIRE(squeeze(unsqueeze(x, 1), 1).shape() == Shape{2, 3});
  REQUIRE(squeeze(rnd({2, 1}, 1), -1).shape() == Shape{2});
  Tensor xi = test::random_input({2, 3}, 8);
  REQUIRE_GRADCHECK([](const Ins& in) { return mul(squeeze(unsqueeze(in[0], 1), 1), in[0]); }, {xi});
  REQUIRE_GRADCHECK([](const Ins& in) { return expand(unsqueeze(in[0], 0), {4, 2, 3}); }, {xi});
  REQUIRE_THAT(error_of([&] { squeeze(x, 0); }), Contains("squeeze") && Contains("[2, 3]"));
  REQUIRE_THROWS_AS(squeeze(x, 2), Error);
  REQUIRE_THROWS_AS(unsqueeze(x, 4), Error);
}

namespace {
// out[i] = x[i permuted back]: y index i has x index j with j[perm[d]] = i[d].
void check_permute(const Tensor& x, const Idx& perm, const Tensor& y) {
  const Shape& xs = x.shape();
  REQUIRE(y.dim() == x.dim());
  for (size_t d = 0; d < perm.size(); ++d) REQUIRE(y.shape()[d] == xs[perm[d]]);
  std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  bool same = true;
  for (int64_t f = 0; f < y.numel() && same; ++f) {
    Idx i = unravel(f, y.shape()), j(xs.size());
    for (size_t d = 0; d < perm.size(); ++d) j[perm[d]] = i[d];
    same = yv[f] == xv[ravel(j, xs)];
  }
  REQUIRE(same);
}
}  // namespace

TEST_CASE("permute: every permutation of small and tiled shapes, all dtypes") {
  for (const Shape& s : {Shape{2, 3, 4}, Shape{37, 45, 3}, Shape{64, 1, 70}, Shape{5, 1, 1}}) {
    for (DType t : {DType::f32, DType::i64, DType::u8}) {
      Tensor x = iota(s, t);
      Idx perm{0, 1, 2};
      do {
        CAPTURE(shape_str(s), shape_str(perm), dtype_name(t));
        check_permute(x, perm, permute(x, perm));
      } while (std::next_permutation(perm.begin(), perm.end()));
    }
  }
  // Four axes with merged pairs and a strided inner axis; i32.
  Tensor x4 = iota({3, 40, 5, 33}, DType::i32);
  for (const Idx& p : {Idx{0, 3, 1, 2}, Idx{2, 3, 0, 1}, Idx{3, 2, 1, 0}, Idx{1, 0, 2, 3}}) check_permute(x4, p, permute(x4, p));
  // Negative axes and a 0-d tensor.
  Tensor x = rnd({2, 3, 4}, 2);
  check_permute(x, {2, 0, 1}, permute(x, {-1, 0, 1}));
  REQUIRE(permute(Tensor::scalar(3), {}).item() == 3);
  REQUIRE(permute(rnd({0, 3}, 1), {1, 0}).shape() == Shape{3, 0});
}

TEST_CASE("permute and transpose: gradients") {
  for (const Shape& s : {Shape{3, 4}, Shape{2, 3, 4}, Shape{2, 1, 3, 2}}) {
    Tensor x = test::random_input(s, 11);
    Idx perm(s.size());
    std::iota(perm.begin(), perm.end(), 0);
    std::reverse(perm.begin(), perm.end());
    REQUIRE_GRADCHECK([&](const Ins& in) { return permute(in[0], perm); }, {x});
    std::rotate(perm.begin(), perm.begin() + 1, perm.end());
    REQUIRE_GRADCHECK([&](const Ins& in) { return permute(in[0], perm); }, {x});
    REQUIRE_GRADCHECK([](const Ins& in) { return transpose(in[0], 0, -1); }, {x});
  }
}

TEST_CASE("transpose: forward and errors") {
  Tensor x = iota({3, 4, 5}, DType::i64);
  check_permute(x, {2, 1, 0}, transpose(x, 0, 2));
  check_permute(x, {0, 2, 1}, transpose(x, -1, 1));
  check_permute(x, {0, 1, 2}, transpose(x, 1, 1));
  REQUIRE_THAT(error_of([&] { transpose(x, 0, 3); }), Contains("transpose") && Contains("[3, 4, 5]"));
  REQUIRE_THROWS_AS(transpose(x, -4, 0), Error);
  REQUIRE_THROWS_AS(transpose(Tensor::scalar(1), 0, 0), Error);
}

TEST_CASE("permute: errors name the op, the permutation and the shape") {
  Tensor x = rnd({2, 3, 4}, 1);
  REQUIRE_THROWS_AS(permute(x, {0, 1}), Error);
  REQUIRE_THAT(error_of([&] { permute(x, {0, 0, 1}); }), Contains("permute") && Contains("[0, 0, 1]") &&
                                                              Contains("[2, 3, 4]"));
  REQUIRE_THROWS_AS(permute(x, {0, 1, 3}), Error);
  REQUIRE_THROWS_AS(permute(x, {0, 1, -4}), Error);
  REQUIRE_THROWS_AS(permute(x, {2, -1, 0}), Error);  // -1 is 2: repeated
}

TEST_CASE("concat: forward against naive, any dtype, large runs") {
  for (int64_t axis : {0, 1, 2, -1}) {
    std::vector<Shape> shapes{{2, 3, 4}, {2, 3, 4}, {2, 3, 4}};
    const int64_t a = axis < 0 ? axis + 3 : axis;
    shapes[1][a] = 1;
    shapes[2][a] = 5;
    for (DType t : {DType::f32, DType::i64, DType::u8}) {
      std::vector<Tensor> xs;
      for (size_t k = 0; k < shapes.size(); ++k) xs.push_back(add(iota(shapes[k]), 100.0 * k).to(t));
      Tensor y = concat(xs, axis);
      Shape ys = shapes[0];
      ys[a] = shapes[0][a] + 1 + 5;
      REQUIRE(y.shape() == ys);
      REQUIRE(y.dtype() == t);
      std::vector<double> yv = y.to_vector<double>();
      for (int64_t f = 0; f < y.numel(); ++f) {
        Idx i = unravel(f, ys);
        size_t k = 0;
        while (i[a] >= shapes[k][a]) i[a] -= shapes[k++][a];
        REQUIRE(yv[f] == xs[k].to_vector<double>()[ravel(i, shapes[k])]);
      }
    }
  }
  // Big enough that the copies split into pieces across threads.
  Tensor a = rnd({300, 1000}, 1), b = rnd({200, 1000}, 2);
  Tensor y = concat({a, b}, 0);
  REQUIRE(narrow(y, 0, 0, 300).to_vector<float>() == a.to_vector<float>());
  REQUIRE(narrow(y, 0, 300, 200).to_vector<float>() == b.to_vector<float>());
  Tensor z = concat({a, rnd({300, 7}, 3)}, 1);
  REQUIRE(slice(z, 1, 0, 1000).to_vector<float>() == a.to_vector<float>());
}

TEST_CASE("concat and stack: gradients, including an input without one") {
  Tensor a = test::random_input({2, 3}, 1), b = test::random_input({2, 1}, 2), c = test::random_input({2, 4}, 3);
  REQUIRE_GRADCHECK([](const Ins& in) { return concat(in, 1); }, {a, b, c});
  Tensor d = test::random_input({1, 3}, 4);
  REQUIRE_GRADCHECK([](const Ins& in) { return concat(in, 0); }, {a, d});
  Tensor e = rnd({3, 3}, 5);  // no gradient wanted
  REQUIRE_GRADCHECK([&](const Ins& in) { return concat({in[0], e, in[1]}, -2); }, {a, d});
  Tensor s1 = test::random_input({2, 3}, 6), s2 = test::random_input({2, 3}, 7);
  for (int64_t axis : {0, 1, 2, -1}) REQUIRE_GRADCHECK([&](const Ins& in) { return stack(in, axis); }, {s1, s2, a});
}

TEST_CASE("stack: forward against naive") {
  std::vector<Tensor> xs{iota({2, 3}, DType::i32), add(iota({2, 3}), 10).to(DType::i32), add(iota({2, 3}), 20).to(DType::i32)};
  for (int64_t axis : {0, 1, 2, -3}) {
    Tensor y = stack(xs, axis);
    const int64_t a = axis < 0 ? axis + 3 : axis;
    Shape ys{2, 3};
    ys.insert(ys.begin() + a, 3);
    REQUIRE(y.shape() == ys);
    std::vector<int32_t> yv = y.to_vector<int32_t>();
    for (int64_t f = 0; f < y.numel(); ++f) {
      Idx i = unravel(f, ys);
      int64_t k = i[a];
      i.erase(i.begin() + a);
      REQUIRE(yv[f] == xs[k].to_vector<int32_t>()[ravel(i, {2, 3})]);
    }
  }
}

TEST_CASE("concat and stack: errors") {
  Tensor a = rnd({2, 3}, 1), b = rnd({3, 3}, 2);
  REQUIRE_THAT(error_of([&] { concat({a, b}, 1); }), Contains("concat") && Contains("[2, 3]") && Contains("[3, 3]"));
  REQUIRE_THROWS_AS(concat({a, rnd({2, 3, 1}, 1)}, 0), Error);
  REQUIRE_THROWS_AS(concat({a, a.to(DType::i64)}, 0), Error);
  REQUIRE_THAT(error_of([&] { concat({a, a}, 2); }), Contains("concat") && Contains("axis 2"));
  REQUIRE_THROWS_AS(concat({}, 0), Error);
  REQUIRE_THROWS_AS(concat({Tensor::scalar(1), Tensor::scalar(2)}, 0), Error);
  REQUIRE_THAT(error_of([&] { stack({a, b}, 0); }), Contains("stack") && Contains("[2, 3]") && Contains("[3, 3]"));
  REQUIRE_THROWS_AS(stack({a, a}, 3), Error);
  REQUIRE_THROWS_AS(stack({a, a}, -4), Error);
  REQUIRE(stack({Tensor::scalar(1), Tensor::scalar(2)}, 0).to_vector<float>() == std::vector<float>{1, 2});
}

namespace {
// Python's range of x[start:end:step] over n elements.
Idx python_range(int64_t n, int64_t start, int64_t end, int64_t step) {
  auto fix = [n](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + n : v, 0, n); };
  Idx r;
  for (int64_t i = fix(start); i < fix(end); i += step) r.push_back(i);
  return r;
}

void check_slice_along(const Tensor& x, int64_t a, const Idx& taken, const Tensor& y) {
  Shape ys = x.shape();
  ys[a] = static_cast<int64_t>(taken.size());
  REQUIRE(y.shape() == ys);
  std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  for (int64_t f = 0; f < y.numel(); ++f) {
    Idx i = unravel(f, ys);
    i[a] = taken[i[a]];
    REQUIRE(yv[f] == xv[ravel(i, x.shape())]);
  }
}
}  // namespace

TEST_CASE("narrow and slice: forward against naive, python bounds") {
  Tensor x = iota({4, 7, 3}, DType::i64);
  for (int64_t a = 0; a < 3; ++a) {
    const int64_t n = x.shape()[a];
    for (int64_t start = -n; start < n; ++start)
      for (int64_t len = 0; len + (start < 0 ? start + n : start) <= n; ++len) {
        Idx taken(len);
        std::iota(taken.begin(), taken.end(), start < 0 ? start + n : start);
        check_slice_along(x, a, taken, narrow(x, a, start, len));
      }
    for (int64_t start : {-10, -3, -1, 0, 1, 2, 9})
      for (int64_t end : {-10, -2, 0, 1, 3, 5, 100})
        for (int64_t step : {1, 2, 3, 5}) {
          CAPTURE(a, start, end, step);
          check_slice_along(x, a, python_range(n, start, end, step), slice(x, a, start, end, step));
        }
  }
  // Large strided slices copy rows of many elements in parallel.
  Tensor big = rnd({64, 300, 20}, 4);
  check_slice_along(big, 1, python_range(300, 3, -2, 7), slice(big, 1, 3, -2, 7));
  check_slice_along(big, 2, python_range(20, 1, 20, 2), slice(big, -1, 1, 20, 2));
  check_slice_along(big, 0, python_range(64, 5, 60, 1), narrow(big, 0, 5, 55));
}

TEST_CASE("narrow and slice: gradients scatter into zeros") {
  Tensor x = test::random_input({4, 5, 3}, 9);
  REQUIRE_GRADCHECK([](const Ins& in) { return narrow(in[0], 1, 1, 3); }, {x});
  REQUIRE_GRADCHECK([](const Ins& in) { return narrow(in[0], 0, -2, 2); }, {x});
  REQUIRE_GRADCHECK([](const Ins& in) { return slice(in[0], 1, 0, 5, 2); }, {x});
  REQUIRE_GRADCHECK([](const Ins& in) { return slice(in[0], 2, -2, 100, 1); }, {x});
  REQUIRE_GRADCHECK([](const Ins& in) { return slice(in[0], 0, -1, -5, 1); }, {x});  // empty
  Tensor v = test::random_input({9}, 10);
  REQUIRE_GRADCHECK([](const Ins& in) { return mul(slice(in[0], 0, 1, 8, 3), slice(in[0], 0, 0, 3)); }, {v});
}

TEST_CASE("narrow and slice: errors") {
  Tensor x = rnd({4, 5}, 1);
  REQUIRE_THAT(error_of([&] { narrow(x, 1, 3, 3); }), Contains("narrow") && Contains("[4, 5]"));
  REQUIRE_THROWS_AS(narrow(x, 0, -5, 1), Error);
  REQUIRE_THROWS_AS(narrow(x, 0, 0, -1), Error);
  REQUIRE_THROWS_AS(narrow(x, 2, 0, 1), Error);
  REQUIRE_THAT(error_of([&] { slice(x, 0, 0, 3, 0); }), Contains("slice") && Contains("step"));
  REQUIRE_THROWS_AS(slice(x, 0, 0, 3, -1), Error);
  REQUIRE_THAT(error_of([&] { slice(x, -3, 0, 1); }), Contains("slice") && Contains("[4, 5]"));
}

TEST_CASE("index_select: forward against naive for i64 and i32 indices, any dtype") {
  Tensor x = iota({3, 5, 4}, DType::i64);
  const std::vector<int64_t> ids{4, 0, 0, 2, 4, 1};
  for (DType it : {DType::i64, DType::i32}) {
    for (int64_t a = 0; a < 3; ++a) {
      std::vector<int64_t> sel;
      for (int64_t v : ids)
        if (v < x.shape()[a]) sel.push_back(v);
      Tensor index = Tensor::from_vector(sel, {static_cast<int64_t>(sel.size())}).to(it);
      check_slice_along(x, a, sel, index_select(x, a, index));
      check_slice_along(x.to(DType::u8), a, sel, index_select(x.to(DType::u8), a - 3, index));
    }
  }
  Tensor empty_index = Tensor::from_vector(std::vector<int64_t>{}, {0});
  REQUIRE(index_select(x, 1, empty_index).shape() == Shape{3, 0, 4});
}

TEST_CASE("index_select: repeated indices accumulate gradients") {
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{2, 0, 2, 2, 1}, {5});
  Tensor idx32 = idx.to(DType::i32);
  for (const Shape& s : {Shape{3}, Shape{3, 4}, Shape{3, 3, 2}}) {
    Tensor x = test::random_input(s, 13);
    REQUIRE_GRADCHECK([&](const Ins& in) { return index_select(in[0], 0, idx); }, {x});
    if (s.size() > 1) REQUIRE_GRADCHECK([&](const Ins& in) { return index_select(in[0], 1, idx32); }, {x});
  }
  // x[2] selected three times: its gradient is the sum of the three output rows' gradients.
  Tensor x = test::random_input({3, 2}, 14);
  index_select(x, 0, idx).backward(Tensor::ones({5, 2}));
  REQUIRE(x.grad().to_vector<float>() == std::vector<float>{1, 1, 1, 1, 3, 3});
}

TEST_CASE("index_select and gather backward: bit-identical across thread counts") {
  Generator gen(3);
  Tensor x = Tensor::randn({50, 600}, gen).set_requires_grad(true);
  Tensor idx = Tensor::randint(0, 50, {4000}, gen);
  Tensor gidx = Tensor::randint(0, 50, {300, 600}, gen);
  Tensor w1 = Tensor::randn({4000, 600}, gen), w2 = Tensor::randn({300, 600}, gen);
  auto grads = [&](int threads) {
    set_num_threads(threads);
    x.zero_grad();
    index_select(x, 0, idx).backward(w1);
    std::vector<float> a = x.grad().to_vector<float>();
    x.zero_grad();
    gather(x, 0, gidx).backward(w2);
    std::vector<float> b = x.grad().to_vector<float>();
    return std::make_pair(a, b);
  };
  const int prev = get_num_threads();
  auto one = grads(1), two = grads(2), three = grads(3);
  set_num_threads(prev);
  REQUIRE(one == two);
  REQUIRE(one == three);
}

TEST_CASE("index_select: errors name the op and the bad value") {
  Tensor x = rnd({3, 4}, 1);
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 7, 1}, {3});
  REQUIRE_THROWS_AS(index_select(x, 0, bad), Error);
  REQUIRE_THAT(error_of([&] { index_select(x, 1, bad); }), Contains("index_select") && Contains("7") &&
                                                               Contains("[3, 4]"));
  REQUIRE_THAT(error_of([&] { index_select(x, 0, Tensor::from_vector(std::vector<int32_t>{-1}, {1})); }),
               Contains("index_select") && Contains("-1"));
  REQUIRE_THROWS_AS(index_select(x, 0, Tensor::from_vector(std::vector<float>{0})), Error);
  REQUIRE_THROWS_AS(index_select(x, 0, Tensor::from_vector(std::vector<int64_t>{0, 1}, {1, 2})), Error);
  REQUIRE_THROWS_AS(index_select(x, 2, Tensor::from_vector(std::vector<int64_t>{0}, {1})), Error);
}

namespace {
void check_gather(const Tensor& x, int64_t a, const Tensor& index, const Tensor& y) {
  REQUIRE(y.shape() == index.shape());
  std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  for (int64_t f = 0; f < y.numel(); ++f) {
    Idx i = unravel(f, index.shape());
    i[a] = iv[f];
    REQUIRE(yv[f] == xv[ravel(i, x.shape())]);
  }
}
}  // namespace

TEST_CASE("gather: forward against naive, index smaller than x, any dtype") {
  Generator gen(21);
  Tensor x = iota({4, 5, 6}, DType::i64);
  for (int64_t a = 0; a < 3; ++a) {
    for (const Shape& is : {Shape{4, 5, 6}, Shape{2, 3, 4}, Shape{4, 1, 6}, Shape{1, 5, 2}}) {
      Shape s = is;
      s[a] = 7;  // the gathered axis may be any length
      Tensor index = Tensor::randint(0, x.shape()[a], s, gen);
      CAPTURE(a, shape_str(s));
      check_gather(x, a, index, gather(x, a, index));
      check_gather(x, a, index, gather(x.to(DType::f32), a - 3, index.to(DType::i32)));
    }
  }
  Tensor big = rnd({40, 70, 30}, 5);
  Tensor bidx = Tensor::randint(0, 70, {40, 100, 30}, gen);
  check_gather(big, 1, bidx, gather(big, 1, bidx));
}

TEST_CASE("gather: repeated indices accumulate gradients") {
  Generator gen(22);
  for (const Shape& s : {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}}) {
    for (int64_t a = 0; a < static_cast<int64_t>(s.size()); ++a) {
      Shape is = s;
      is[a] = 6;  // more picks than entries: some repeat
      if (s.size() > 1) is[(a + 1) % s.size()] -= 1;
      Tensor index = Tensor::randint(0, s[a], is, gen, a % 2 ? DType::i32 : DType::i64);
      Tensor x = test::random_input(s, 30 + a);
      CAPTURE(shape_str(s), a);
      REQUIRE_GRADCHECK([&](const Ins& in) { return gather(in[0], a, index); }, {x});
    }
  }
}

TEST_CASE("gather: errors") {
  Tensor x = rnd({3, 4}, 1);
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 1, 9, 0}, {2, 2});
  REQUIRE_THAT(error_of([&] { gather(x, 1, bad); }), Contains("gather") && Contains("9") && Contains("[3, 4]"));
  REQUIRE_THROWS_AS(gather(x, 0, bad), Error);
  REQUIRE_THAT(error_of([&] { gather(x, 0, Tensor::from_vector(std::vector<int64_t>{0}, {1})); }),
               Contains("gather") && Contains("[1]") && Contains("[3, 4]"));
  REQUIRE_THROWS_AS(gather(x, 0, Tensor::from_vector(std::vector<int64_t>{0, 0, 0, 0, 0}, {1, 5})), Error);
  REQUIRE_THROWS_AS(gather(x, 0, Tensor::zeros({1, 1}, DType::u8)), Error);
  REQUIRE_THROWS_AS(gather(x, 2, Tensor::zeros({1, 1}, DType::i64)), Error);
}

TEST_CASE("one_hot: forward and errors") {
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, 0, 1, 2, 3, 0}, {2, 3});
  for (DType t : {DType::i64, DType::i32}) {
    Tensor y = one_hot(labels.to(t), 4);
    REQUIRE(y.shape() == Shape{2, 3, 4});
    REQUIRE(y.dtype() == DType::f32);
    std::vector<float> yv = y.to_vector<float>();
    std::vector<int64_t> lv = labels.to_vector<int64_t>();
    for (int64_t f = 0; f < y.numel(); ++f) REQUIRE(yv[f] == (lv[f / 4] == f % 4 ? 1.0f : 0.0f));
  }
  REQUIRE(one_hot(Tensor::scalar(1, DType::i64), 3).to_vector<float>() == std::vector<float>{0, 1, 0});
  REQUIRE_THAT(error_of([&] { one_hot(labels, 3); }), Contains("one_hot") && Contains("label 3"));
  REQUIRE_THAT(error_of([] { one_hot(Tensor::from_vector(std::vector<int32_t>{0, -2}, {2}), 3); }),
               Contains("one_hot") && Contains("-2"));
  REQUIRE_THROWS_AS(one_hot(labels, 0), Error);
  REQUIRE_THROWS_AS(one_hot(labels.to(DType::f32), 4), Error);
}
