// Tests for the LR schedules' closed forms, warmup, apply() on parameter groups, and bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <numbers>

#include "optim/schedule.h"
#include "optim/sgd.h"
#include "support/test_util.h"

using namespace lowbit;
using test::error_of;


TEST_CASE("constant, step and multistep schedules", "[optim]") {
  ConstantLr c;
  REQUIRE(c.lr(0.3, 0) == 0.3);
  REQUIRE(c.lr(0.3, 1000) == 0.3);

  StepLr s(3, 0.5);
  const double want_s[] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25};
  for (int t = 0; t < 8; ++t) REQUIRE(s.lr(2.0, t) == Approx(2.0 * want_s[t]));
  REQUIRE(s.factor(9) == Approx(0.125));

  MultiStepLr m({2, 5}, 0.1);
  const double want_m[] = {1, 1, 0.1, 0.1, 0.1, 0.01, 0.01};
  for (int t = 0; t < 7; ++t) REQUIRE(m.lr(1.0, t) == Approx(want_m[t]));
  REQUIRE(MultiStepLr({}, 0.1).lr(0.4, 10) == 0.4);
}

TEST_CASE("cosine schedule, absolute and fractional floor", "[optim]") {
  // torch CosineAnnealingLR(T_max=10, eta_min=0.01) with base lr 0.1, closed form.
  CosineLr a(10, 0.01);
  for (int t : {0, 1, 3, 5, 9, 10, 13}) {
    double want = 0.01 + (0.1 - 0.01) * (1 + std::cos(std::numbers::pi * t / 10)) / 2;
    REQUIRE(a.lr(0.1, t) == Approx(want).epsilon(1e-12));
  }
  REQUIRE(a.lr(0.1, 0) == Approx(0.1));
  REQUIRE(a.lr(0.1, 5) == Approx(0.055));
  REQUIRE(a.lr(0.1, 10) == Approx(0.01));
  REQUIRE(a.lr(0.1, 15) == Approx(0.055));  // periodic past t_max, as torch
  REQUIRE(a.lr(0.1, 20) == Approx(0.1));

  CosineLr f(4, 0.1, CosineFloor::fraction);
  REQUIRE(f.lr(2.0, 0) == Approx(2.0));
  REQUIRE(f.lr(2.0, 2) == Approx(0.2 + 1.8 * 0.5));
  REQUIRE(f.lr(2.0, 4) == Approx(0.2));
  REQUIRE(f.factor(4) == Approx(0.1));
}

TEST_CASE("linear warmup in front of another schedule", "[optim]") {
  auto cos = std::make_shared<CosineLr>(10, 0.0);
  WarmupLr w(cos, 4, 0.2);
  REQUIRE(w.lr(1.0, 0) == Approx(0.2));
  REQUIRE(w.lr(1.0, 1) == Approx(0.4));
  REQUIRE(w.lr(1.0, 3) == Approx(0.8));
  REQUIRE(w.lr(1.0, 4) == Approx(1.0));  // the cosine starts at t = warmup_steps
  REQUIRE(w.lr(1.0, 9) == Approx(0.5));
  REQUIRE(w.lr(1.0, 14) == Approx(0.0).margin(1e-15));

  WarmupLr from_zero(std::make_shared<StepLr>(2, 0.5), 2);
  REQUIRE(from_zero.lr(0.8, 0) == 0.0);
  REQUIRE(from_zero.lr(0.8, 1) == Approx(0.4));
  REQUIRE(from_zero.lr(0.8, 2) == Approx(0.8));
  REQUIRE(from_zero.lr(0.8, 4) == Approx(0.4));

  WarmupLr none(std::make_shared<ConstantLr>(), 0, 0.5);
  REQUIRE(none.lr(0.3, 0) == 0.3);
}

TEST_CASE("apply scales each group's base lr", "[optim]") {
  Tensor a = Tensor::zeros({2}), b = Tensor::zeros({2});
  SgdOptions o;
  o.lr = 0.1;
  SGD opt({{"a.weight", a}, {"a.bias", b}}, o, {{"*.bias", 1.0, {}}});
  StepLr s(1, 0.5);
  s.apply(opt, 2);
  REQUIRE(opt.groups()[0].lr == Approx(0.25));
  REQUIRE(opt.groups()[1].lr == Approx(0.025));
  REQUIRE(opt.groups()[0].base_lr == 1.0);
  CosineLr c(4, 0.01);
  c.apply(opt, 4);
  REQUIRE(opt.groups()[0].lr == Approx(0.01));
  REQUIRE(opt.groups()[1].lr == Approx(0.01));
}

TEST_CASE("bad schedule arguments are errors naming the argument", "[optim]") {
  REQUIRE_THAT(error_of([] { StepLr s(0); }), Catch::Contains("StepLr") && Catch::Contains("step_size = 0"));
  REQUIRE_THAT(error_of([] { StepLr s(2, -0.1); }), Catch::Contains("gamma"));
  REQUIRE_THAT(error_of([] { MultiStepLr m({3, 3}); }), Catch::Contains("milestones"));
  REQUIRE_THAT(error_of([] { MultiStepLr m({-1}); }), Catch::Contains("milestone = -1"));
  REQUIRE_THAT(error_of([] { CosineLr c(0); }), Catch::Contains("t_max = 0"));
  REQUIRE_THAT(error_of([] { CosineLr c(5, -0.1); }), Catch::Contains("eta_min"));
  REQUIRE_THAT(error_of([] { CosineLr c(5, 2.0, CosineFloor::fraction); }), Catch::Contains("eta_min"));
  REQUIRE_THAT(error_of([] { WarmupLr w(nullptr, 3); }), Catch::Contains("WarmupLr"));
  REQUIRE_THAT(error_of([] { WarmupLr w(std::make_shared<ConstantLr>(), -2); }), Catch::Contains("warmup_steps"));
  REQUIRE_THAT(error_of([] { WarmupLr w(std::make_shared<ConstantLr>(), 2, 1.5); }),
               Catch::Contains("start_factor"));
  REQUIRE_THAT(error_of([] { StepLr(2).lr(1.0, -1); }), Catch::Contains("negative"));
}
