// CPU-vs-CUDA checks of dropout (core/cuda/dropout.cu) and the index/shape kernels
// (core/cuda/index.cu). These kernels copy, select or add in the CPU's order, so the results
// must be bit-identical, forward and backward; bad indices must fail with the CPU's message.
// All cases need a GPU ([gpu]).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>

#include "core/cuda/runtime.h"
#include "core/ops/dropout.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/ops/shape_ops.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "cuda/need_gpu.h"

using namespace lowbit;

namespace {

using Inputs = std::vector<Tensor>;
using Fn = std::function<Tensor(const Inputs&)>;

// Same shape, dtype and bytes (a CUDA tensor is copied back first).
void require_identical(const Tensor& cpu, const Tensor& dev, const std::string& what) {
  INFO(what);
  REQUIRE(dev.device().is_cuda());
  const Tensor h = dev.to(Device::cpu());
  REQUIRE(h.shape() == cpu.shape());
  REQUIRE(h.dtype() == cpu.dtype());
  REQUIRE(std::memcmp(h.raw_data(), cpu.raw_data(), cpu.nbytes()) == 0);
}

// Runs fn on f32 inputs of `shapes` on both devices, then backward with the same random
// upstream gradient, and requires identical outputs and input gradients.
void check_op(const std::string& name, const std::vector<Shape>& shapes, const Fn& fn, bool backward = true) {
  INFO("case " << name);
  Generator gen(7);
  Inputs cpu_in, dev_in;
  for (const Shape& s : shapes) {
    Tensor t = Tensor::randn(s, gen).detach();
    Tensor d = t.to(Device::cuda());
    if (backward) {
      t.set_requires_grad();
      d.set_requires_grad();
    }
    cpu_in.push_back(t);
    dev_in.push_back(d);
  }
  const Tensor yc = fn(cpu_in), yd = fn(dev_in);
  require_identical(yc, yd, name + ": forward");
  if (!backward) return;
  const Tensor dy = Tensor::randn(yc.shape(), gen);
  yc.backward(dy);
  yd.backward(dy.to(Device::cuda()));
  for (size_t i = 0; i < cpu_in.size(); ++i) {
    REQUIRE(cpu_in[i].grad().defined());
    require_identical(cpu_in[i].grad(), dev_in[i].grad(), name + ": gradient of input " + std::to_string(i));
  }
}

Tensor index_on(const Tensor& like, const std::vector<int64_t>& v, DType dt = DType::i64) {
  Tensor t = Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())});
  if (dt != DType::i64) t = t.to(dt);
  return t.to(like.device());
}

// The Error message of f(dev), or "" when it does not throw.
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("cuda concat, stack and slices match the CPU bit for bit", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  check_op("concat axis 0", {{2, 3}, {4, 3}}, [](const Inputs& x) { return concat({x[0], x[1]}, 0); });
  check_op("concat axis 1 of three", {{2, 3, 4}, {2, 1, 4}, {2, 5, 4}}, [](const Inputs& x) {
    return concat({x[0], x[1], x[2]}, 1);
  });
  check_op("concat last axis", {{3, 2}, {3, 7}}, [](const Inputs& x) { return concat({x[0], x[1]}, -1); });
  check_op("stack axis 1", {{3, 4}, {3, 4}}, [](const Inputs& x) { return stack({x[0], x[1]}, 1); });
  check_op("narrow", {{5, 6, 2}}, [](const Inputs& x) { return narrow(x[0], 1, 2, 3); });
  check_op("slice step 1", {{7, 5}}, [](const Inputs& x) { return slice(x[0], 0, 1, 6); });
  check_op("slice step 3 inner axis", {{2, 11, 3}}, [](const Inputs& x) { return slice(x[0], 1, 1, 11, 3); });
  check_op("slice negative bounds", {{9}}, [](const Inputs& x) { return slice(x[0], 0, -7, -1, 2); });
  check_op(
      "slice empty", {{4, 3}}, [](const Inputs& x) { return slice(x[0], 0, 3, 3); }, false);

  SECTION("1-byte and 8-byte dtypes") {
    Generator gen(3);
    const Tensor a = Tensor::randint(0, 200, {3, 5}, gen, DType::u8);
    const Tensor b = Tensor::randint(0, 200, {2, 5}, gen, DType::u8);
    require_identical(concat({a, b}, 0), concat({a.to(Device::cuda()), b.to(Device::cuda())}, 0), "concat u8");
    const Tensor c = Tensor::randint(-1000, 1000, {4, 9}, gen, DType::i64);
    require_identical(slice(c, 1, 1, 9, 2), slice(c.to(Device::cuda()), 1, 1, 9, 2), "slice i64");
    require_identical(concat({c, c}, 1), concat({c.to(Device::cuda()), c.to(Device::cuda())}, 1), "concat i64");
  }
}

TEST_CASE("cuda index_select, gather and their scatter-add adjoints match the CPU bit for bit", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  for (DType dt : {DType::i64, DType::i32}) {
    const std::string tag = dt == DType::i64 ? " (i64 index)" : " (i32 index)";
    // Repeated indices: index_add must add them in index order on both devices.
    check_op("index_select axis 0" + tag, {{5, 4}}, [dt](const Inputs& x) {
      return index_select(x[0], 0, index_on(x[0], {4, 0, 4, 2, 4}, dt));
    });
    check_op("index_select axis 1" + tag, {{2, 6, 3}}, [dt](const Inputs& x) {
      return index_select(x[0], 1, index_on(x[0], {5, 5, 1}, dt));
    });
    check_op("index_select empty index" + tag, {{3, 4}},
             [dt](const Inputs& x) { return index_select(x[0], 1, index_on(x[0], {}, dt)); });
    check_op("gather axis 1" + tag, {{3, 5}}, [dt](const Inputs& x) {
      Tensor idx = index_on(x[0], {0, 4, 4, 1, 1, 1, 2, 3, 0}, dt).reshape({3, 3});
      return gather(x[0], 1, idx);
    });
    check_op("gather axis 0, index smaller than x" + tag, {{4, 3, 2}}, [dt](const Inputs& x) {
      Tensor idx = index_on(x[0], {3, 3, 0, 1, 2, 3, 0, 0}, dt).reshape({2, 2, 2});
      return gather(x[0], 0, idx);
    });
    check_op("gather last axis 3-D" + tag, {{2, 3, 4}}, [dt](const Inputs& x) {
      Tensor idx = index_on(x[0], {3, 0, 1, 1, 2, 2, 0, 3, 3, 3, 1, 0}, dt).reshape({2, 3, 2});
      return gather(x[0], -1, idx);
    });
  }

  SECTION("i64 data through index_select and gather") {
    Generator gen(5);
    const Tensor x = Tensor::randint(-50, 50, {4, 6}, gen, DType::i64);
    const Tensor xd = x.to(Device::cuda());
    require_identical(index_select(x, 1, index_on(x, {5, 0, 0})), index_select(xd, 1, index_on(xd, {5, 0, 0})),
                      "index_select i64 data");
    const Tensor idx = index_on(x, {1, 2, 3, 0}).reshape({4, 1});
    require_identical(gather(x, 1, idx), gather(xd, 1, idx.to(Device::cuda())), "gather i64 data");
  }

  SECTION("a larger index_select backward (many repeats, long columns)") {
    Generator gen(9);
    const Tensor idx = Tensor::randint(0, 10, {3000}, gen);
    check_op("index_select 3000 of 10 rows", {{10, 70}},
             [&idx](const Inputs& x) { return index_select(x[0], 0, idx.to(x[0].device())); });
  }
}

TEST_CASE("cuda index kernels reject out-of-range indices with the CPU's message", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  const Tensor x = Tensor::ones({4, 3});
  const Tensor xd = x.to(Device::cuda());
  auto both = [&](const std::function<void(const Tensor&)>& f) {
    const std::string mc = message_of([&] { f(x); }), md = message_of([&] { f(xd); });
    INFO("cpu: " << mc << "\ncuda: " << md);
    REQUIRE(!mc.empty());
    REQUIRE(md == mc);
  };
  both([](const Tensor& t) { (void)index_select(t, 0, index_on(t, {1, 4, -1})); });
  both([](const Tensor& t) { (void)index_select(t, 1, index_on(t, {0, -2}, DType::i32)); });
  both([](const Tensor& t) { (void)gather(t, 1, index_on(t, {0, 1, 3, 2}).reshape({2, 2})); });
  both([](const Tensor& t) { (void)one_hot(index_on(t, {0, 3, 9}), 4); });
  both([](const Tensor& t) { (void)one_hot(index_on(t, {-1}, DType::i32), 4); });
}

TEST_CASE("cuda one_hot matches the CPU", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  for (DType dt : {DType::i64, DType::i32}) {
    const Tensor labels = Tensor::from_vector<int64_t>({2, 0, 4, 4, 1, 3}, {2, 3}).to(dt);
    require_identical(one_hot(labels, 5), one_hot(labels.to(Device::cuda()), 5), "one_hot");
  }
}

TEST_CASE("cuda dropout draws the CPU's mask bit for bit", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  // Sizes around the 4-element Philox blocks, and a generator already advanced (counter base > 0).
  for (int64_t n : {1, 3, 4, 5, 4099, 100003}) {
    for (double p : {0.1, 0.5, 0.9}) {
      INFO("n " << n << " p " << p);
      Generator data(11);
      Tensor x = Tensor::randn({n}, data).detach();
      Tensor xd = x.to(Device::cuda());
      x.set_requires_grad();
      xd.set_requires_grad();
      Generator gc = Generator(123).split("dropout"), gd = gc;
      (void)gc.reserve(17);
      (void)gd.reserve(17);
      const Tensor yc = dropout(x, p, true, gc), yd = dropout(xd, p, true, gd);
      REQUIRE(gc.offset() == gd.offset());
      require_identical(yc, yd, "dropout forward");
      const Tensor dy = Tensor::randn({n}, data);
      yc.backward(dy);
      yd.backward(dy.to(Device::cuda()));
      require_identical(x.grad(), xd.grad(), "dropout backward");
    }
  }
  SECTION("inf and NaN in dropped elements propagate as on the CPU") {
    // NaN payloads differ between x86 and the GPU, so compare NaN-ness, then the other values.
    const Tensor x = Tensor::from_vector(std::vector<float>{INFINITY, -INFINITY, NAN, 1.0f, INFINITY, 2.0f, NAN, 3.0f});
    Generator gc(5), gd(5);
    const auto yc = dropout(x, 0.5, true, gc).to_vector<float>();
    const auto yd = dropout(x.to(Device::cuda()), 0.5, true, gd).to_vector<float>();
    REQUIRE(yc.size() == yd.size());
    for (size_t i = 0; i < yc.size(); ++i) {
      INFO("element " << i << ": cpu " << yc[i] << ", cuda " << yd[i]);
      REQUIRE(std::isnan(yc[i]) == std::isnan(yd[i]));
      if (!std::isnan(yc[i])) REQUIRE(yc[i] == yd[i]);
    }
  }
}
