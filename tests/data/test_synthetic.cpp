// SyntheticDataset: determinism from (seed, index), batch path agreement, learnable class structure.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "data/synthetic.h"

using namespace lowbit;

TEST_CASE("SyntheticDataset is a pure function of (seed, index)", "[data][synthetic]") {
  SyntheticDataset a(50, {2, 4, 4}, 5, 7), b(50, {2, 4, 4}, 5, 7), c(50, {2, 4, 4}, 5, 8);
  REQUIRE(a.size() == 50);
  REQUIRE(a.num_classes() == 5);
  // Read in different orders: values depend only on the index.
  Example a9 = a.get(9);
  (void)b.get(3);
  Example b9 = b.get(9);
  REQUIRE(a9.label == b9.label);
  REQUIRE(a9.image.to_vector<float>() == b9.image.to_vector<float>());
  REQUIRE(a9.image.to_vector<float>() != c.get(9).image.to_vector<float>());
  REQUIRE(a.get(9).image.to_vector<float>() != a.get(10).image.to_vector<float>());

  Tensor images, labels;
  a.get_batch({9, 0, 49}, images, labels);
  REQUIRE(images.shape() == Shape{3, 2, 4, 4});
  std::vector<float> v = images.to_vector<float>();
  REQUIRE(std::vector<float>(v.begin(), v.begin() + 32) == a9.image.to_vector<float>());
  REQUIRE(labels.to_vector<int64_t>() == std::vector<int64_t>{a9.label, a.get(0).label, a.get(49).label});

  std::vector<int> seen(5, 0);
  for (int64_t i = 0; i < 50; ++i) {
    REQUIRE(a.label(i) >= 0);
    REQUIRE(a.label(i) < 5);
    seen[static_cast<size_t>(a.label(i))]++;
  }
  for (int s : seen) REQUIRE(s > 0);
  REQUIRE_THROWS_AS(a.get(50), Error);
  REQUIRE_THROWS_AS(SyntheticDataset(10, {4, 4}, 2, 0), Error);
}

TEST_CASE("SyntheticDataset samples are closest to their own class mean", "[data][synthetic]") {
  // Nearest-centroid on per-class averages classifies held-out samples well above chance.
  const int64_t n = 400, k = 4, per = 3 * 8 * 8;
  SyntheticDataset ds(n, {3, 8, 8}, k, 1);
  std::vector<double> centroid(k * per, 0.0);
  std::vector<int64_t> count(k, 0);
  for (int64_t i = 0; i < n / 2; ++i) {
    Example ex = ds.get(i);
    for (int64_t j = 0; j < per; ++j) centroid[ex.label * per + j] += ex.image.data<float>()[j];
    count[ex.label]++;
  }
  int correct = 0;
  for (int64_t i = n / 2; i < n; ++i) {
    Example ex = ds.get(i);
    int64_t best = -1;
    double best_d = 1e300;
    for (int64_t c = 0; c < k; ++c) {
      double d = 0;
      for (int64_t j = 0; j < per; ++j) {
        double diff = ex.image.data<float>()[j] - centroid[c * per + j] / std::max<int64_t>(1, count[c]);
        d += diff * diff;
      }
      if (d < best_d) best_d = d, best = c;
    }
    correct += best == ex.label;
  }
  REQUIRE(correct > 0.9 * (n / 2));
}
