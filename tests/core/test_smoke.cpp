#include <catch2/catch.hpp>
#include "lowbit.h"
#include "support/gradcheck.h"
using namespace lowbit;
TEST_CASE("smoke: add broadcast backward") {
  Tensor a = test::random_input({2, 3}, 1);
  Tensor b = test::random_input({3}, 2);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return add(mul(in[0], in[1]), in[1]); }, {a, b});
  Tensor s = sum(a);
  REQUIRE(s.numel() == 1);
}
