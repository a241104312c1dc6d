// The lowbit tool as a user runs it: exit codes, one-line errors, train -> info/eval/report/export.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "support/test_util.h"
#ifdef LOWBIT_WITH_CUDA
#include "core/cuda/runtime.h"
#endif

#ifndef LOWBIT_CLI_PATH
#error "LOWBIT_CLI_PATH must name the built lowbit executable"
#endif

namespace {

struct Result {
  int code = -1;
  std::string out, err;
};

// Runs `lowbit ARGS` with stdout and stderr captured into files of `dir`.
Result run_cli(const lowbit::test::TempDir& dir, const std::string& args) {
  const std::string out = dir.file("stdout.txt"), err = dir.file("stderr.txt");
  const std::string cmd = std::string(LOWBIT_CLI_PATH) + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

const char* kConfig = R"(model: {name: lenet5}
data: {dataset: synthetic, synthetic: {train_size: 128, test_size: 64}}
train: {epochs: 1, batch_size: 32}
)";

}  // namespace

TEST_CASE("cli: exit codes and one-line errors", "[cli]") {
  lowbit::test::TempDir tmp("cli_errors");
  REQUIRE(run_cli(tmp, "--help").code == 0);
  REQUIRE(run_cli(tmp, "train --help").code == 0);
  REQUIRE(run_cli(tmp, "").code == 1);                  // a subcommand is required
  REQUIRE(run_cli(tmp, "frobnicate").code == 1);
  std::ofstream(tmp.file("bad.yaml")) << "train: {epochs: 0}\n";
  Result r = run_cli(tmp, "train " + tmp.file("bad.yaml"));
  REQUIRE(r.code == 1);
  REQUIRE_THAT(r.err, Catch::StartsWith("lowbit: error: ") && Catch::Contains("train.epochs") &&
                          Catch::Contains("bad.yaml:1"));
  REQUIRE(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  r = run_cli(tmp, "eval " + tmp.file("missing.safetensors"));
  REQUIRE(r.code == 1);
  REQUIRE_THAT(r.err, Catch::Contains("missing.safetensors"));
  r = run_cli(tmp, "bench --model nosuchnet --steps 1");
  REQUIRE(r.code == 1);
  REQUIRE_THAT(r.err, Catch::Contains("nosuchnet"));
  std::ofstream(tmp.file("junk.safetensors")) << "this is not a checkpoint";
  REQUIRE(run_cli(tmp, "info " + tmp.file("junk.safetensors")).code == 1);
}

TEST_CASE("cli: train, then info, eval, report, export and eval of the export", "[cli]") {
  lowbit::test::TempDir tmp("cli_flow");
  std::ofstream(tmp.file("c.yaml")) << kConfig;
  const std::string run = tmp.file("run");
  Result r = run_cli(tmp, "train " + tmp.file("c.yaml") + " -q --run-dir " + run +
                             " --set quant.method=lsq --set quant.weight_bits=3 --set quant.act_bits=4");
  INFO(r.err);
  REQUIRE(r.code == 0);
  REQUIRE_THAT(r.out, Catch::Contains("test top-1"));

  r = run_cli(tmp, "info " + run + "/last.safetensors");
  REQUIRE(r.code == 0);
  REQUIRE_THAT(r.out, Catch::Contains("0.wq.") && Catch::Contains("optimizer state"));

  Result fake = run_cli(tmp, "eval --json " + run + "/best.safetensors");
  REQUIRE(fake.code == 0);
  const auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  REQUIRE_FALSE(read(run + "/quant_report.json").empty());
  const std::string own = "{\"written_by\": \"the trainer\"}\n";  // a stand-in the report must not replace
  std::ofstream(run + "/quant_report.json", std::ios::trunc) << own;
  r = run_cli(tmp, "report " + run + " -o " + tmp.file("best_report.json"));
  REQUIRE(r.code == 0);
  REQUIRE_THAT(r.out, Catch::Contains("average weight bits 3.000"));
  REQUIRE_THAT(read(tmp.file("best_report.json")), Catch::Contains("\"avg_weight_bits\": 3.0"));
  REQUIRE(read(run + "/quant_report.json") == own);  // the trainer's record is left alone

  r = run_cli(tmp, "export " + run + "/best.safetensors -o " + tmp.file("exp"));
  REQUIRE(r.code == 0);
  Result exported = run_cli(tmp, "eval --json " + tmp.file("exp"));
  REQUIRE(exported.code == 0);
  // Same loss and accuracies to the last printed digit: the export is the eval forward.
  auto strip = [](std::string s) { return s.substr(s.find("\"dataset\"")); };
  REQUIRE(strip(exported.out) == strip(fake.out));
}

TEST_CASE("cli: --device on train, eval and bench", "[cli][device]") {
  lowbit::test::TempDir tmp("cli_device");
  std::ofstream(tmp.file("c.yaml")) << kConfig;
  const std::string run = tmp.file("run");
  Result r = run_cli(tmp, "train " + tmp.file("c.yaml") + " -q --device cpu --run-dir " + run);
  INFO(r.err);
  REQUIRE(r.code == 0);
  r = run_cli(tmp, "eval --json --device cpu " + run + "/best.safetensors");
  REQUIRE(r.code == 0);
  r = run_cli(tmp, "train " + tmp.file("c.yaml") + " -q --device gpu");
  REQUIRE(r.code == 1);
  REQUIRE_THAT(r.err, Catch::StartsWith("lowbit: error: ") && Catch::Contains("train.device") &&
                          Catch::Contains("unknown value 'gpu'"));
  r = run_cli(tmp, "bench --device tpu --steps 1");
  REQUIRE(r.code == 1);
  REQUIRE_THAT(r.err, Catch::Contains("unknown device 'tpu'"));

#ifdef LOWBIT_WITH_CUDA
  if (lowbit::cuda::is_available()) {
    WARN("a GPU is present: the no-GPU errors are not checked here");
    return;
  }
  const std::string missing = "cuda requested but no CUDA device is available (0 devices)";
#else
  const std::string missing =
      "cuda requested but lowbit was built without CUDA (rebuild with -DLOWBIT_CUDA=ON where nvcc is installed, or use cpu)";
#endif
  // No GPU here: each command asking for one fails cleanly, exit 1, one line naming what is missing.
  r = run_cli(tmp, "train " + tmp.file("c.yaml") + " -q --device cuda --run-dir " + tmp.file("run2"));
  REQUIRE(r.code == 1);
  REQUIRE(r.err == "lowbit: error: train.device: " + missing + "\n");
  r = run_cli(tmp, "train --resume " + run + " -q --device cuda");
  REQUIRE(r.code == 1);
  REQUIRE_THAT(r.err, Catch::Contains("train.device: " + missing));
  r = run_cli(tmp, "eval --device cuda " + run + "/best.safetensors");
  REQUIRE(r.code == 1);
  REQUIRE(r.err == "lowbit: error: eval --device: " + missing + "\n");
  r = run_cli(tmp, "bench --device cuda --steps 1");
  REQUIRE(r.code == 1);
  REQUIRE(r.err == "lowbit: error: bench --device: " + missing + "\n");
  // A run that says cuda in its config evaluates on the CPU here, with a note.
  r = run_cli(tmp, "eval --set train.device=cuda " + run + "/best.safetensors");
  REQUIRE(r.code == 0);
  REQUIRE_THAT(r.err, Catch::Contains("note: train.device: " + missing) && Catch::Contains("evaluating on cpu"));
}

TEST_CASE("cli: bench --quant-set merges keys under one parent", "[cli]") {
  lowbit::test::TempDir tmp("cli_bench_quant");
  Result r = run_cli(tmp, "bench --model mlp --batch 8 --steps 1 --warmup 0 --threads 1 --json --quant cpq --bits 4/2 "
                          "--quant-set learn_bits.enabled=true --quant-set learn_bits.max_bits=4 --quant-set dropbits.p=0.2");
  REQUIRE(r.code == 0);
  REQUIRE_THAT(r.out, Catch::Contains("learn_bits: {enabled: true, max_bits: 4}") && Catch::Contains("dropbits: {p: 0.2}"));
  r = run_cli(tmp, "bench --model mlp --steps 1 --quant cpq --quant-set learn_bits.max_bits");
  REQUIRE(r.code == 1);
  REQUIRE_THAT(r.err, Catch::Contains("expected key.path=value") && Catch::Contains("bench --quant-set"));
}
