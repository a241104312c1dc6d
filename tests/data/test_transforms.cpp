// Transforms: normalize values, crop/flip against reference loops, reproducibility by (epoch, index).
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "data/transforms.h"

using namespace lowbit;

namespace {
Tensor ramp(const Shape& s) {
  std::vector<float> v(static_cast<size_t>(numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i + 1);
  return Tensor::from_vector(v, s);
}
}  // namespace

TEST_CASE("Normalize uses per-channel mean and std", "[data][transforms]") {
  Tensor x = ramp({2, 3, 2, 2});
  Normalize norm({1.0f, 2.0f, 3.0f}, {0.5f, 2.0f, 4.0f});
  Tensor y = norm.apply(x, {0, 1}, 0, Generator(0));
  const float mean[3] = {1, 2, 3}, sd[3] = {0.5f, 2, 4};
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 3; ++c)
      for (int j = 0; j < 4; ++j) {
        const int i = (b * 3 + c) * 4 + j;
        REQUIRE(y.data<float>()[i] == Approx((x.data<float>()[i] - mean[c]) / sd[c]));
      }
  REQUIRE_THROWS_AS(norm.apply(ramp({1, 2, 2, 2}), {0}, 0, Generator(0)), Error);
  REQUIRE_THROWS_AS(Normalize({0.f}, {0.f}), Error);
}

TEST_CASE("RandomCrop pads with zeros and is keyed by (epoch, index)", "[data][transforms]") {
  const int64_t B = 6, C = 2, H = 5, W = 7, P = 2;
  Tensor x = ramp({B, C, H, W});
  std::vector<int64_t> idx{10, 11, 12, 13, 14, 15};
  RandomCrop crop(H, W, P);
  Generator g(42);
  Tensor y = crop.apply(x, idx, 3, g);
  REQUIRE(y.shape() == Shape{B, C, H, W});
  // Every output is a shifted copy of its input with zeros where the window leaves it.
  bool any_shift = false;
  for (int64_t b = 0; b < B; ++b) {
    bool found = false;
    for (int64_t dy = -P; dy <= P && !found; ++dy)
      for (int64_t dx = -P; dx <= P && !found; ++dx) {
        bool ok = true;
        for (int64_t c = 0; c < C && ok; ++c)
          for (int64_t i = 0; i < H && ok; ++i)
            for (int64_t j = 0; j < W && ok; ++j) {
              const int64_t si = i + dy, sj = j + dx;
              const float want = (si < 0 || si >= H || sj < 0 || sj >= W) ? 0.f : x.at({b, c, si, sj});
              ok = y.at({b, c, i, j}) == want;
            }
        if (ok) found = true, any_shift |= (dy != 0 || dx != 0);
      }
    REQUIRE(found);
  }
  REQUIRE(any_shift);
  // Same (seed, epoch, index) -> same crop, whatever the batch holds around the sample.
  REQUIRE(crop.apply(x, idx, 3, g).to_vector<float>() == y.to_vector<float>());
  Tensor one = crop.apply(x.rows(2, 1), {12}, 3, g);
  std::vector<float> yv = y.to_vector<float>(), ov = one.to_vector<float>();
  REQUIRE(ov == std::vector<float>(yv.begin() + 2 * C * H * W, yv.begin() + 3 * C * H * W));
  REQUIRE(crop.apply(x, idx, 4, g).to_vector<float>() != y.to_vector<float>());
  REQUIRE(RandomCrop(3, 3, 0).apply(x, idx, 0, g).shape() == Shape{B, C, 3, 3});
  REQUIRE_THROWS_AS(RandomCrop(10, 10, 0).apply(x, idx, 0, g), Error);
}

TEST_CASE("RandomHorizontalFlip mirrors rows, reproducibly", "[data][transforms]") {
  const int64_t B = 32, C = 2, H = 2, W = 3;
  Tensor x = ramp({B, C, H, W});
  std::vector<int64_t> idx(B);
  for (int64_t b = 0; b < B; ++b) idx[b] = b;
  RandomHorizontalFlip flip;
  Tensor y = flip.apply(x, idx, 0, Generator(1));
  int flipped = 0;
  for (int64_t b = 0; b < B; ++b) {
    const bool same = y.at({b, 0, 0, 0}) == x.at({b, 0, 0, 0});
    flipped += !same;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j) REQUIRE(y.at({b, c, i, j}) == x.at({b, c, i, same ? j : W - 1 - j}));
  }
  REQUIRE(flipped > 4);
  REQUIRE(flipped < 28);
  REQUIRE(flip.apply(x, idx, 0, Generator(1)).to_vector<float>() == y.to_vector<float>());
  REQUIRE(RandomHorizontalFlip(0.f).apply(x, idx, 0, Generator(1)).to_vector<float>() == x.to_vector<float>());
}

TEST_CASE("Compose chains transforms with a stream each", "[data][transforms]") {
  Tensor x = ramp({4, 1, 4, 4});
  std::vector<int64_t> idx{0, 1, 2, 3};
  Compose pipe;
  pipe.add(std::make_shared<RandomCrop>(4, 4, 1)).add(std::make_shared<Normalize>(std::vector<float>{1.f}, std::vector<float>{2.f}));
  Tensor y = pipe(x, idx, 1, Generator(5));
  Tensor ref = Normalize({1.f}, {2.f}).apply(RandomCrop(4, 4, 1).apply(x, idx, 1, Generator(5).split(0)), idx, 1,
                                             Generator(5).split(1));
  REQUIRE(y.to_vector<float>() == ref.to_vector<float>());
  REQUIRE(Compose().empty());
}
