// conv2d: forward and both gradients against naive loops, gradcheck over strides, padding,
// dilation, groups (incl. depthwise), 1x1 and non-square kernels; error messages; determinism.
#include <catch2/catch.hpp>

#include <string>

#include "core/ops/conv.h"
#include "lowbit.h"
#include "support/gradcheck.h"

using namespace lowbit;

namespace {

struct Case {
  int64_t n, c, h, w, o, kh, kw;
  Conv2dOptions opt;
};

Conv2dOptions opts(std::array<int64_t, 2> stride, std::array<int64_t, 2> pad, std::array<int64_t, 2> dil = {1, 1},
                   int64_t groups = 1) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.dilation = dil;
  o.groups = groups;
  return o;
}

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

// Visits every (n, o, oh, ow, c_in_group, i, j) term of the convolution with its x index (or -1 when in padding).
template <class F>
void for_each_term(const Case& k, F f) {
  const int64_t oh = out_size(k.h, k.kh, k.opt.stride[0], k.opt.padding[0], k.opt.dilation[0]);
  const int64_t ow = out_size(k.w, k.kw, k.opt.stride[1], k.opt.padding[1], k.opt.dilation[1]);
  const int64_t cg = k.c / k.opt.groups, og = k.o / k.opt.groups;
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t o = 0; o < k.o; ++o)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t x = 0; x < ow; ++x)
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t i = 0; i < k.kh; ++i)
              for (int64_t j = 0; j < k.kw; ++j) {
                const int64_t r = y * k.opt.stride[0] + i * k.opt.dilation[0] - k.opt.padding[0];
                const int64_t s = x * k.opt.stride[1] + j * k.opt.dilation[1] - k.opt.padding[1];
                if (r < 0 || r >= k.h || s < 0 || s >= k.w) continue;
                const int64_t c = (o / og) * cg + ci;
                f(((n * k.o + o) * oh + y) * ow + x, ((n * k.c + c) * k.h + r) * k.w + s,
                  ((o * cg + ci) * k.kh + i) * k.kw + j, o);
              }
}

// Reference forward and backward in double.
std::vector<double> naive_forward(const Case& k, const std::vector<float>& x, const std::vector<float>& w,
                                  const std::vector<float>& b, size_t ny) {
  std::vector<double> y(ny, 0.0);
  for_each_term(k, [&](int64_t yi, int64_t xi, int64_t wi, int64_t) { y[size_t(yi)] += double(x[size_t(xi)]) * w[size_t(wi)]; });
  if (!b.empty()) {
    const size_t per = ny / size_t(k.n * k.o);
    for (size_t i = 0; i < ny; ++i) y[i] += b[(i / per) % size_t(k.o)];
  }
  return y;
}

void require_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(what << " element " << i);
    REQUIRE(got[i] == Approx(want[i]).margin(tol).epsilon(tol));
  }
}

// Forward and all three gradients of conv2d against the naive loops.
void check_against_naive(const Case& k, bool bias, uint64_t seed) {
  Generator gen(seed);
  Tensor x = Tensor::randn({k.n, k.c, k.h, k.w}, gen).set_requires_grad(true);
  Tensor w = Tensor::randn({k.o, k.c / k.opt.groups, k.kh, k.kw}, gen).set_requires_grad(true);
  Tensor b = bias ? Tensor::randn({k.o}, gen).set_requires_grad(true) : Tensor();
  Tensor y = conv2d(x, w, b, k.opt);
  std::vector<float> xv = x.to_vector<float>(), wv = w.to_vector<float>();
  std::vector<float> bv = bias ? b.to_vector<float>() : std::vector<float>();
  std::vector<double> want = naive_forward(k, xv, wv, bv, size_t(y.numel()));
  require_close(y.to_vector<float>(), want, 1e-3, "y");

  Tensor dy = Tensor::randn(y.shape(), gen);
  y.backward(dy);
  std::vector<float> dyv = dy.to_vector<float>();
  std::vector<double> dx(xv.size(), 0.0), dw(wv.size(), 0.0), db(size_t(k.o), 0.0);
  for_each_term(k, [&](int64_t yi, int64_t xi, int64_t wi, int64_t) {
    dx[size_t(xi)] += double(dyv[size_t(yi)]) * wv[size_t(wi)];
    dw[size_t(wi)] += double(dyv[size_t(yi)]) * xv[size_t(xi)];
  });
  const size_t per = dyv.size() / size_t(k.n * k.o);
  for (size_t i = 0; i < dyv.size(); ++i) db[(i / per) % size_t(k.o)] += dyv[i];
  require_close(x.grad().to_vector<float>(), dx, 1e-3, "dx");
  require_close(w.grad().to_vector<float>(), dw, 2e-3, "dw");
  if (bias) require_close(b.grad().to_vector<float>(), db, 1e-3, "db");
}

std::string conv_error(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  try {
    conv2d(x, w, b, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("conv2d: forward and gradients match naive loops") {
  const Case cases[] = {
      {2, 3, 9, 9, 5, 3, 3, opts({1, 1}, {1, 1})},                 // "same" 3x3 (flat shifted copies)
      {2, 4, 10, 7, 6, 3, 3, opts({2, 2}, {1, 1})},                // stride 2, odd width (col2im dx)
      {1, 3, 11, 12, 4, 2, 3, opts({1, 2}, {0, 1})},               // non-square kernel, mixed stride
      {2, 4, 9, 9, 6, 3, 3, opts({1, 1}, {2, 2}, {2, 2})},         // dilation
      {1, 3, 7, 8, 2, 3, 3, opts({1, 1}, {3, 3})},                 // padding larger than the kernel reach
      {2, 4, 8, 8, 6, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 2)},      // groups
      {2, 6, 9, 9, 6, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 6)},      // depthwise
      {2, 6, 9, 9, 12, 3, 3, opts({2, 2}, {1, 1}, {1, 1}, 6)},     // depthwise multiplier 2, strided
      {2, 5, 11, 10, 5, 3, 2, opts({2, 1}, {1, 2}, {1, 2}, 5)},    // depthwise strided, dilated, non-square
      {2, 8, 6, 6, 5, 1, 1, opts({1, 1}, {0, 0})},                 // 1x1 (no copy)
      {2, 8, 7, 7, 5, 1, 1, opts({2, 2}, {0, 0})},                 // 1x1 strided
      {1, 2, 5, 5, 3, 5, 5, opts({1, 1}, {0, 0})},                 // kernel as large as the input
      {1, 3, 20, 20, 70, 3, 3, opts({1, 1}, {1, 1})},              // several row panels and pixel tiles
      {1, 256, 4, 4, 64, 3, 3, opts({1, 1}, {1, 1})},              // K split into blocks
      {3, 16, 12, 12, 16, 3, 3, opts({2, 2}, {1, 1})},             // ResNet-like strided layer
      {2, 16, 17, 18, 5, 3, 3, opts({1, 1}, {1, 1})},              // 16 x 16 transposes plus edges
      {2, 32, 16, 16, 8, 3, 3, opts({2, 2}, {1, 1})},              // strided, whole transpose tiles
      {1, 33, 16, 19, 7, 3, 2, opts({1, 1}, {1, 0}, {1, 2})},      // dilated columns: one tap per segment
      {1, 3, 34, 37, 4, 3, 3, opts({2, 2}, {1, 1})},               // stride 2 over rows wider than 32
      {1, 2, 20, 40, 3, 2, 2, opts({2, 2}, {0, 0})},               // stride 2, even kernel, no padding
      {1, 2, 9, 23, 3, 3, 3, opts({2, 2}, {2, 1}, {1, 2})},        // stride 2, 16 <= w < 32, dilated
      {2, 32, 9, 9, 8, 3, 3, opts({2, 2}, {1, 1}, {1, 1}, 2)},     // groups on the channels-last paths
      {2, 20, 6, 6, 7, 1, 1, opts({1, 1}, {0, 0})},                // 1x1 with a wide channel segment
      {3, 1, 28, 28, 32, 5, 5, opts({1, 1}, {0, 0})},              // one input channel (direct dx), LeNet's first layer
      {1, 1, 9, 40, 3, 3, 3, opts({1, 1}, {2, 4})},                // one channel, two column blocks, wide padding
      {1, 2, 7, 33, 4, 3, 3, opts({1, 1}, {1, 5}, {1, 2})},        // two channels, dilated columns, odd rows
      {2, 2, 6, 5, 3, 3, 3, opts({1, 1}, {1, 1}, {2, 1})},         // dilated rows: the GEMM dx
      {2, 4, 5, 35, 8, 3, 1, opts({1, 1}, {4, 0}, {1, 1}, 4)},     // one channel per group, padding past the reach
  };
  uint64_t seed = 100;
  for (const Case& k : cases) {
    INFO("case n=" << k.n << " c=" << k.c << " " << k.h << "x" << k.w << " o=" << k.o << " k=" << k.kh << "x" << k.kw
                   << " stride " << k.opt.stride[0] << "," << k.opt.stride[1] << " pad " << k.opt.padding[0] << ","
                   << k.opt.padding[1] << " dil " << k.opt.dilation[0] << " groups " << k.opt.groups);
    check_against_naive(k, seed % 2 == 0, seed);
    ++seed;
  }
}

TEST_CASE("conv2d: gradcheck over strides, padding, dilation, groups and kernel shapes") {
  struct G {
    Shape x, w;
    Conv2dOptions opt;
    bool bias;
  };
  const G cases[] = {
      {{2, 2, 5, 5}, {3, 2, 3, 3}, opts({1, 1}, {1, 1}), true},
      {{1, 2, 6, 5}, {2, 2, 3, 3}, opts({2, 2}, {1, 1}), false},
      {{1, 3, 5, 6}, {2, 3, 2, 3}, opts({1, 2}, {1, 0}), true},
      {{1, 2, 7, 7}, {2, 2, 3, 3}, opts({1, 1}, {2, 1}, {2, 1}), false},
      {{2, 4, 4, 4}, {4, 2, 3, 3}, opts({1, 1}, {1, 1}, {1, 1}, 2), true},
      {{1, 3, 5, 5}, {3, 1, 3, 3}, opts({1, 1}, {1, 1}, {1, 1}, 3), false},  // depthwise
      {{2, 4, 3, 3}, {3, 4, 1, 1}, opts({1, 1}, {0, 0}), true},             // 1x1
      {{1, 2, 4, 4}, {2, 2, 3, 3}, opts({1, 1}, {3, 2}), true},             // wide padding
  };
  uint64_t seed = 200;
  for (const G& c : cases) {
    Tensor x = test::random_input(c.x, seed++), w = test::random_input(c.w, seed++);
    std::vector<Tensor> in{x, w};
    if (c.bias) in.push_back(test::random_input({c.w[0]}, seed++));
    Conv2dOptions o = c.opt;
    REQUIRE_GRADCHECK(
        [o](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), o); }, in);
  }
}

TEST_CASE("conv2d: gradients only for the inputs that require them") {
  Generator gen(300);
  Tensor x = Tensor::randn({2, 3, 6, 6}, gen);
  Tensor w = Tensor::randn({4, 3, 3, 3}, gen).set_requires_grad(true);
  conv2d(x, w, Tensor(), opts({1, 1}, {1, 1})).backward(Tensor::ones({2, 4, 6, 6}));
  REQUIRE(w.grad().defined());
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("conv2d: a single image is split across threads with the same result") {
  const int saved = get_num_threads();
  Generator gen(303);
  for (const Conv2dOptions& o : {opts({1, 1}, {1, 1}), opts({2, 2}, {1, 1})}) {
    Tensor x = Tensor::randn({1, 16, 20, 20}, gen), w = Tensor::randn({24, 16, 3, 3}, gen);
    Tensor b = Tensor::randn({24}, gen);
    set_num_threads(1);
    std::vector<float> one = conv2d(x, w, b, o).to_vector<float>();
    set_num_threads(2);
    std::vector<float> two = conv2d(x, w, b, o).to_vector<float>();
    REQUIRE(one == two);
    Case k{1, 16, 20, 20, 24, 3, 3, o};
    require_close(two, naive_forward(k, x.to_vector<float>(), w.to_vector<float>(), b.to_vector<float>(), two.size()),
                  1e-3, "y");
  }
  set_num_threads(saved);
}

TEST_CASE("conv2d: an empty batch gives an empty output and zero weight gradients") {
  Generator gen(302);
  Tensor x = Tensor::randn({0, 3, 6, 6}, gen).set_requires_grad(true);
  Tensor w = Tensor::randn({4, 3, 3, 3}, gen).set_requires_grad(true);
  Tensor b = Tensor::randn({4}, gen).set_requires_grad(true);
  Tensor y = conv2d(x, w, b, opts({2, 2}, {1, 1}));
  REQUIRE(y.shape() == Shape{0, 4, 3, 3});
  y.backward(Tensor::zeros(y.shape()));
  for (float v : w.grad().to_vector<float>()) REQUIRE(v == 0.0f);
  for (float v : b.grad().to_vector<float>()) REQUIRE(v == 0.0f);
}

TEST_CASE("conv2d: results are reproducible for a fixed thread count and agree across thread counts") {
  const int saved = get_num_threads();
  Generator gen(301);
  Tensor x = Tensor::randn({5, 8, 9, 9}, gen).set_requires_grad(true);
  Tensor w = Tensor::randn({6, 8, 3, 3}, gen).set_requires_grad(true);
  std::vector<std::vector<float>> runs;
  for (int threads : {2, 2, 1}) {
    set_num_threads(threads);
    x.zero_grad();
    w.zero_grad();
    Tensor y = conv2d(x, w, Tensor(), opts({1, 1}, {1, 1}));
    y.backward(Tensor::ones(y.shape()));
    std::vector<float> r = y.to_vector<float>();
    for (float v : x.grad().to_vector<float>()) r.push_back(v);
    for (float v : w.grad().to_vector<float>()) r.push_back(v);
    runs.push_back(r);
  }
  set_num_threads(saved);
  REQUIRE(runs[0] == runs[1]);
  for (size_t i = 0; i < runs[0].size(); ++i) REQUIRE(runs[2][i] == Approx(runs[0][i]).margin(1e-4));
}

TEST_CASE("conv2d: errors name the op and the shapes") {
  Generator gen(400);
  Tensor x = Tensor::randn({2, 4, 8, 8}, gen);
  std::string m = conv_error(x, Tensor::randn({5, 3, 3, 3}, gen), Tensor(), {});
  REQUIRE(m.find("conv2d") != std::string::npos);
  REQUIRE(m.find("[2, 4, 8, 8]") != std::string::npos);
  REQUIRE(m.find("[5, 3, 3, 3]") != std::string::npos);
  m = conv_error(x, Tensor::randn({5, 2, 3, 3}, gen), Tensor(), opts({1, 1}, {0, 0}, {1, 1}, 2));
  REQUIRE(m.find("groups") != std::string::npos);  // 5 output channels not divisible by 2
  m = conv_error(x, Tensor::randn({6, 4, 3, 3}, gen), Tensor(), opts({1, 1}, {0, 0}, {1, 1}, 3));
  REQUIRE(m.find("groups") != std::string::npos);
  m = conv_error(x, Tensor::randn({5, 4, 9, 3}, gen), Tensor(), {});
  REQUIRE(m.find("larger than the padded input") != std::string::npos);
  REQUIRE(conv_error(x, Tensor::randn({5, 4, 9, 3}, gen), Tensor(), opts({1, 1}, {1, 0})).empty());
  m = conv_error(x, Tensor::randn({5, 4, 3, 3}, gen), Tensor(), opts({1, 1}, {0, 0}, {4, 4}));
  REQUIRE(m.find("larger than the padded input") != std::string::npos);
  REQUIRE(conv_error(x.reshape({8, 8, 8}), Tensor::randn({5, 8, 3, 3}, gen), Tensor(), {}).find("conv2d") == 0);
  REQUIRE(conv_error(x, Tensor::randn({5, 4, 3, 3}, gen), Tensor::randn({4}, gen), {}).find("bias") != std::string::npos);
  REQUIRE(conv_error(x, Tensor::randn({5, 4, 3, 3}, gen), Tensor(), opts({0, 1}, {0, 0})).find("stride") != std::string::npos);
  REQUIRE(conv_error(x, Tensor::randn({5, 4, 3, 3}, gen), Tensor(), opts({1, 1}, {-1, 0})).find("padding") != std::string::npos);
  REQUIRE_THROWS_AS(conv2d(x.to(DType::i64), Tensor::randn({5, 4, 3, 3}, gen)), Error);
}
