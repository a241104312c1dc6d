// Sweeps: expansion of runs x grid x seeds, errors before anything trains, a tiny real sweep.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support/test_util.h"
#include "train/sweep.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

const char* kBase = R"(
model: {name: mlp, hidden: [16]}
data: {dataset: synthetic, synthetic: {train_size: 128, test_size: 64}}
optim: {name: adam, lr: 3.0e-3}
train: {epochs: 1, batch_size: 32, threads: 2}
)";

std::string write(const test::TempDir& d, const std::string& name, const std::string& text) {
  std::ofstream(d.file(name)) << text;
  return d.file(name);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("sweep: runs x grid x seeds, in file order", "[sweep]") {
  test::TempDir tmp("sweep_plan");
  write(tmp, "base.yaml", kBase);
  std::string f = write(tmp, "s.yaml", R"(
base: base.yaml
set: [optim.lr=0.01]
runs:
  - {name: ref, grid: false}
  - {name: sgd, set: [optim.name=sgd]}
  - {set: [optim.name=adamw]}
grid:
  train.batch_size, train.eval_interval: [16, 32]
seeds: [3, 4]
)");
  SweepPlan p = plan_sweep(f, {"train.epochs=2"}, tmp.file("out"));
  REQUIRE(p.runs.size() == (1 + 2 * 2) * 2);
  REQUIRE(p.runs[0].name == "ref");
  REQUIRE(p.runs[0].config.train.batch_size == 32);
  REQUIRE(p.runs[2].name == "sgd,batch_size/eval_interval=16");
  REQUIRE(p.runs[2].config.optim.name == "sgd");
  REQUIRE(p.runs[2].config.train.batch_size == 16);
  REQUIRE(p.runs[2].config.train.eval_interval == 16);
  REQUIRE(p.runs[2].config.train.seed == 3);
  REQUIRE(p.runs[3].config.train.seed == 4);
  REQUIRE(p.runs[6].name == "optim.name=adamw,batch_size/eval_interval=16");
  for (const auto& r : p.runs) {
    REQUIRE(r.config.optim.lr == 0.01);      // the file's common set
    REQUIRE(r.config.train.epochs == 2);      // the command line's, last
  }
  REQUIRE(fs::path(p.runs[3].run_dir) == fs::path(tmp.file("out")) / "sgd_batch_size_eval_interval=16" / "seed4");
}

TEST_CASE("sweep: bad files are errors naming the file, key and run", "[sweep]") {
  test::TempDir tmp("sweep_errors");
  write(tmp, "base.yaml", kBase);
  auto err = [&](const std::string& text) { return test::error_of([&] { plan_sweep(write(tmp, "bad.yaml", text)); }); };
  REQUIRE_THAT(err("base: base.yaml\nrunz: []\n"), Catch::Contains("bad.yaml:2:1") && Catch::Contains("'runz'"));
  REQUIRE_THAT(err("runs: [{name: a}]\n"), Catch::Contains("missing 'base'"));
  REQUIRE_THAT(err("base: nowhere.yaml\n"), Catch::Contains("does not exist"));
  REQUIRE_THAT(err("base: base.yaml\nset: [optim.lr]\n"), Catch::Contains("expected KEY=VALUE"));
  REQUIRE_THAT(err("base: base.yaml\nruns: [{name: a, set: [optim.lr=-1]}]\n"),
               Catch::Contains("run 'a'") && Catch::Contains("optim.lr"));
  REQUIRE_THAT(err("base: base.yaml\nruns: [{name: a}, {name: a}]\n"), Catch::Contains("two runs are named 'a'"));
  REQUIRE_THAT(err("base: base.yaml\ngrid: {train.epochs: []}\n"), Catch::Contains("non-empty list"));
  REQUIRE_THAT(err("base: base.yaml\nseeds: [x]\n"), Catch::Contains("not a non-negative integer"));
  REQUIRE_THAT(err("base: base.yaml\nruns: [{name: a, colour: red}]\n"), Catch::Contains("'runs.colour'"));
  REQUIRE_THAT(err("base: [unclosed\n"), Catch::Contains("YAML syntax error"));
  REQUIRE_THAT(err("base: base.yaml\nseeds: [0]\nseeds: [1]\n"),
               Catch::Contains("bad.yaml:3:1") && Catch::Contains("duplicate key 'seeds' (first at line 2)"));
}

TEST_CASE("sweep: a small sweep trains, tabulates and skips finished runs", "[sweep]") {
  test::TempDir tmp("sweep_run");
  write(tmp, "base.yaml", kBase);
  std::string f = write(tmp, "s.yaml", "base: base.yaml\ngrid: {optim.name: [sgd, adam]}\nseeds: [0, 1]\n");
  SweepPlan p = plan_sweep(f, {}, tmp.file("out"));
  std::string md = run_sweep(p, /*quiet=*/true);
  REQUIRE_THAT(md, Catch::Contains("| name=sgd | 2/2 |") && Catch::Contains("| name=adam | 2/2 |"));
  REQUIRE(fs::exists(tmp.file("out/results.csv")));
  REQUIRE(fs::exists(tmp.file("out/results.md")));
  for (const auto& r : p.runs) {
    SweepResult res = read_run_result(r);
    REQUIRE(res.finished);
    REQUIRE(res.avg_weight_bits == 32);  // a float run's report
    REQUIRE(res.model_bytes > 0);
  }
  // A second invocation trains nothing: the run directories are left as they were.
  auto stamp = fs::last_write_time(fs::path(p.runs[0].run_dir) / "last.safetensors");
  run_sweep(p, true);
  REQUIRE(fs::last_write_time(fs::path(p.runs[0].run_dir) / "last.safetensors") == stamp);
}

TEST_CASE("sweep: --only and --seeds train a part; the table keeps what finished before", "[sweep]") {
  test::TempDir tmp("sweep_select");
  write(tmp, "base.yaml", kBase);
  std::string f = write(tmp, "s.yaml", "base: base.yaml\nruns: [{name: a}, {name: b}]\nseeds: [0, 1]\n");
  SweepPlan p = plan_sweep(f, {}, tmp.file("out"));
  REQUIRE_THAT(test::error_of([&] { select_sweep_runs(p, {"c*"}, {}); }), Catch::Contains("--only 'c*' matches no run"));
  REQUIRE_THAT(test::error_of([&] { select_sweep_runs(p, {}, {7}); }), Catch::Contains("seed 7 is not one"));

  select_sweep_runs(p, {"a"}, {1});
  REQUIRE(std::count_if(p.runs.begin(), p.runs.end(), [](const SweepRun& r) { return r.selected; }) == 1);
  std::string md = run_sweep(p, true);
  REQUIRE_THAT(md, Catch::Contains("| a | 1/1 |"));
  REQUIRE_THAT(md, !Catch::Contains("| b |"));  // neither trained nor finished: left out
  REQUIRE(read_run_result(p.runs[1]).finished);  // a, seed 1
  REQUIRE_FALSE(fs::exists(p.runs[0].run_dir));  // a, seed 0: not selected

  select_sweep_runs(p, {"b"}, {0});
  md = run_sweep(p, true);
  REQUIRE_THAT(md, Catch::Contains("| a | 1/1 |") && Catch::Contains("| b | 1/1 |"));
}

TEST_CASE("sweep: {sweep_dir} and {seed} name an earlier run's output", "[sweep]") {
  test::TempDir tmp("sweep_chain");
  write(tmp, "base.yaml", kBase);
  std::string f = write(tmp, "s.yaml", R"(
base: base.yaml
runs:
  - {name: pre}
  - {name: fine, set: ["model.init_from={sweep_dir}/pre/seed{seed}/best.safetensors"]}
seeds: [0, 1]
)");
  SweepPlan p = plan_sweep(f, {}, tmp.file("out"));
  REQUIRE(p.runs.size() == 4);
  REQUIRE(p.runs[3].config.model.init_from == tmp.file("out") + "/pre/seed1/best.safetensors");
  REQUIRE(p.runs[3].needs == std::vector<size_t>{1});
  REQUIRE(p.runs[2].needs == std::vector<size_t>{0});

  // A dependent run alone: an error naming the run it waits for, nothing trained.
  select_sweep_runs(p, {"fine"}, {0});
  REQUIRE_THAT(test::error_of([&] { run_sweep(p, true); }), Catch::Contains("needs run 'pre' seed 0"));
  REQUIRE_FALSE(fs::exists(p.runs[2].run_dir));
  select_sweep_runs(p, {}, {0});
  run_sweep(p, true);
  REQUIRE(read_run_result(p.runs[2]).finished);
  REQUIRE_THAT(read_text(p.runs[2].run_dir + "/train.log"), Catch::Contains("init_from: loaded"));

  std::string bad = write(tmp, "bad.yaml", R"(
base: base.yaml
runs:
  - {name: fine, set: ["model.init_from={sweep_dir}/pre/seed{seed}/best.safetensors"]}
  - {name: pre}
)");
  REQUIRE_THAT(test::error_of([&] { plan_sweep(bad, {}, tmp.file("out2")); }),
               Catch::Contains("no earlier run of the sweep writes"));
}
