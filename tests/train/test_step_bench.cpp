// bench_training_step and its JSON line (the `lowbit bench` library side).
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/parallel.h"
#include "support/test_util.h"
#include "train/step_bench.h"

using namespace lowbit;

TEST_CASE("step bench: times the requested steps and reports the anchor's keys first") {
  const int before = get_num_threads();
  StepBenchOptions o;
  o.model = "mlp";
  o.batch = 8;
  o.steps = 3;
  o.warmup = 1;
  o.threads = 1;
  StepBenchResult r = bench_training_step(o);
  REQUIRE(get_num_threads() == before);  // the bench restores the caller's thread count
  REQUIRE(r.times_ms.size() == 3);
  REQUIRE(r.min_ms > 0);
  REQUIRE(r.min_ms <= r.median_ms);
  REQUIRE(r.input_shape == std::vector<int64_t>{1, 28, 28});
  REQUIRE(r.parameters == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10);
  REQUIRE(r.peak_bytes > 0);
  REQUIRE(std::isfinite(r.final_loss));
  REQUIRE((r.gemm_backend == "eigen" || r.gemm_backend == "openblas"));

  auto j = nlohmann::ordered_json::parse(step_bench_json(r, o));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  REQUIRE(keys.size() >= 6);
  REQUIRE(std::vector<std::string>(keys.begin(), keys.begin() + 6) ==
          std::vector<std::string>{"model", "batch", "threads", "device", "median_ms", "min_ms"});
  REQUIRE(j["model"] == "mlp");
  REQUIRE(j["device"] == "cpu");
  REQUIRE(j["impl"] == "lowbit");
  REQUIRE(j["steps"] == 3);

  // Same seed, same thread count: the same losses.
  REQUIRE(bench_training_step(o).final_loss == r.final_loss);
  REQUIRE(bench_input_shape("resnet20") == std::vector<int64_t>{3, 32, 32});
}

TEST_CASE("step bench: bad options are errors naming the value") {
  StepBenchOptions o;
  o.model = "lenet6";
  REQUIRE(test::error_of([&] { bench_training_step(o); }).find("lenet6") != std::string::npos);
  REQUIRE(test::error_of([&] { bench_training_step(o); }).find("resnet20") != std::string::npos);
  o.model = "mlp";
  o.batch = 0;
  REQUIRE(test::error_of([&] { bench_training_step(o); }).find("batch") != std::string::npos);
  o.batch = 4;
  o.steps = 0;
  REQUIRE(test::error_of([&] { bench_training_step(o); }).find("steps") != std::string::npos);
}
