// Tensor creation, element access, printing, views, copies and their errors.
#include <catch2/catch.hpp>

#include <cstdint>

#include "lowbit.h"

using namespace lowbit;

TEST_CASE("tensor: creation fills shape, dtype and values") {
  Tensor z = Tensor::zeros({2, 3});
  REQUIRE(z.shape() == Shape{2, 3});
  REQUIRE(z.dtype() == DType::f32);
  REQUIRE(z.numel() == 6);
  for (float v : z.to_vector<float>()) REQUIRE(v == 0.0f);
  Tensor o = Tensor::ones({4}, DType::i32);
  for (int32_t v : o.to_vector<int32_t>()) REQUIRE(v == 1);
  Tensor f = Tensor::full({2, 2}, 2.5);
  REQUIRE(f.at({1, 1}) == 2.5);
  Tensor s = Tensor::scalar(3.0);
  REQUIRE(s.dim() == 0);
  REQUIRE(s.item() == 3.0);
  for (DType t : {DType::f32, DType::i64, DType::i32, DType::u8, DType::i8}) {
    Tensor e = Tensor::full({3}, 7, t);
    REQUIRE(e.dtype() == t);
    REQUIRE(e.at({2}) == 7.0);
    REQUIRE(e.nbytes() == 3 * dtype_size(t));
  }
}

TEST_CASE("tensor: arange follows numpy") {
  Tensor a = Tensor::arange(0, 5);
  REQUIRE(a.dtype() == DType::i64);
  REQUIRE(a.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  Tensor b = Tensor::arange(1, 2, 0.25, DType::f32);
  REQUIRE(b.to_vector<float>() == std::vector<float>{1.0f, 1.25f, 1.5f, 1.75f});
  REQUIRE(Tensor::arange(3, 0, -1).to_vector<int64_t>() == std::vector<int64_t>{3, 2, 1});
  REQUIRE(Tensor::arange(2, 2).numel() == 0);
  REQUIRE_THROWS_AS(Tensor::arange(0, 1, 0), Error);
}

TEST_CASE("tensor: storage is 64-byte aligned") {
  for (int64_t n : {1, 3, 17, 1000, 123457}) {
    Tensor t = Tensor::empty({n});
    REQUIRE(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  }
}

TEST_CASE("tensor: from_vector and element access") {
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  REQUIRE(t.at({0, 2}) == 3.0);
  REQUIRE(t.at({1, 0}) == 4.0);
  REQUIRE_THROWS_AS(t.at({2, 0}), Error);
  REQUIRE_THROWS_AS(t.at({0}), Error);
  REQUIRE_THROWS_AS(t.item(), Error);
  REQUIRE_THROWS_AS(t.data<int64_t>(), Error);
  REQUIRE_THROWS_AS(Tensor::from_vector<float>({1, 2, 3}, {2, 2}), Error);
  REQUIRE_THROWS_AS(Tensor::empty({2, -1}), Error);
}

TEST_CASE("tensor: printing is readable and elides long axes") {
  Tensor t = Tensor::from_vector<float>({1, 2.5f, -3}, {3});
  REQUIRE(t.str() == "Tensor([1, 2.5, -3], shape=[3], dtype=f32)");
  Tensor l = Tensor::arange(0, 100);
  std::string s = l.str();
  REQUIRE(s.find("...") != std::string::npos);
  REQUIRE(s.find("99") != std::string::npos);
  REQUIRE(Tensor().str() == "Tensor(undefined)");
  Tensor m = Tensor::zeros({2, 2}).set_requires_grad(true);
  REQUIRE(m.str() == "Tensor([[0, 0], [0, 0]], shape=[2, 2], dtype=f32, requires_grad)");
}

TEST_CASE("tensor: reshape and flatten are views over the same storage") {
  Tensor t = Tensor::arange(0, 24, 1, DType::f32);
  Tensor r = t.reshape({2, 3, 4});
  REQUIRE(r.raw_data() == t.raw_data());
  REQUIRE(r.at({1, 2, 3}) == 23.0);
  REQUIRE(t.reshape({-1, 6}).shape() == Shape{4, 6});
  REQUIRE(r.flatten().shape() == Shape{24});
  REQUIRE(r.flatten(1).shape() == Shape{2, 12});
  REQUIRE(r.flatten(0, 1).shape() == Shape{6, 4});
  r.fill_(1.0);
  REQUIRE(t.at({5}) == 1.0);  // writes through the view
  REQUIRE_THROWS_AS(t.reshape({5, 5}), Error);
  REQUIRE_THROWS_AS(t.reshape({-1, -1}), Error);
  REQUIRE_THROWS_WITH(t.reshape({7, -1}), Catch::Contains("reshape") && Catch::Contains("[24]"));
}

TEST_CASE("tensor: rows is a view of leading rows") {
  Tensor t = Tensor::arange(0, 12, 1, DType::f32).reshape({4, 3});
  Tensor r = t.rows(1, 2);
  REQUIRE(r.shape() == Shape{2, 3});
  REQUIRE(r.at({0, 0}) == 3.0);
  REQUIRE(r.at({1, 2}) == 8.0);
  REQUIRE_THROWS_AS(t.rows(3, 2), Error);
}

TEST_CASE("tensor: clone copies, to() converts, copy_ checks shapes") {
  Tensor t = Tensor::from_vector<float>({1.5f, -2.7f, 3.2f}, {3});
  Tensor c = t.clone();
  REQUIRE(c.raw_data() != t.raw_data());
  REQUIRE(c.to_vector<float>() == t.to_vector<float>());
  Tensor i = t.to(DType::i32);
  REQUIRE(i.to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3});
  Tensor u = Tensor::from_vector<uint8_t>({0, 255}, {2}).to(DType::f32);
  REQUIRE(u.to_vector<float>() == std::vector<float>{0.0f, 255.0f});
  Tensor d = Tensor::zeros({3});
  d.copy_(t);
  REQUIRE(d.to_vector<float>() == t.to_vector<float>());
  REQUIRE_THROWS_AS(d.copy_(Tensor::zeros({4})), Error);
  REQUIRE_THROWS_AS(d.copy_(Tensor::zeros({3}, DType::i32)), Error);
}

TEST_CASE("tensor: an undefined tensor is an error, not a crash") {
  Tensor u;
  REQUIRE_FALSE(u.defined());
  REQUIRE_THROWS_AS(u.shape(), Error);
  REQUIRE_THROWS_AS(add(u, u), Error);
}

TEST_CASE("tensor: only f32 leaves can require a gradient") {
  REQUIRE_THROWS_AS(Tensor::zeros({2}, DType::i64).set_requires_grad(true), Error);
  Tensor a = Tensor::ones({2}).set_requires_grad(true);
  Tensor b = a * 2.0;
  REQUIRE_THROWS_AS(b.set_requires_grad(false), Error);
}
