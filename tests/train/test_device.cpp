// The device plumbing as seen without a GPU: train.device parsing and its errors, Module::to on
// the CPU, topk_hits against count_topk, resume onto a named device, bench and loader errors.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/rng.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "layers/zoo.h"
#include "optim/sgd.h"
#include "support/test_util.h"
#include "train/checkpoint.h"
#include "train/device.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/step_bench.h"
#include "train/trainer.h"
#ifdef LOWBIT_WITH_CUDA
#include "core/cuda/runtime.h"
#endif

using namespace lowbit;

namespace {

bool gpu_present() {
#ifdef LOWBIT_WITH_CUDA
  return cuda::is_available();
#else
  return false;
#endif
}

// What asking for `spec` says on a machine without a usable GPU, as `where`.
std::string no_gpu_message(const std::string& where, const std::string& spec) {
#ifdef LOWBIT_WITH_CUDA
  return where + ": " + spec + " requested but no CUDA device is available (0 devices)";
#else
  return where + ": " + spec +
         " requested but lowbit was built without CUDA (rebuild with -DLOWBIT_CUDA=ON where nvcc is installed, or use cpu)";
#endif
}

TrainerOptions quiet(const std::string& dir, int64_t stop_after = -1) {
  TrainerOptions o;
  o.run_dir = dir;
  o.console = false;
  o.progress_line = false;
  o.handle_signals = false;
  o.stop_after_steps = stop_after;
  return o;
}

ExperimentConfig small_config(const std::vector<std::string>& extra = {}) {
  const std::string yaml = R"(
model: {name: mlp, hidden: [16], batch_norm: true}
data: {dataset: synthetic, synthetic: {train_size: 96, test_size: 32}}
optim: {name: sgd, lr: 0.05, momentum: 0.9}
train: {epochs: 2, batch_size: 32, seed: 4, threads: 1}
)";
  return load_config_string(yaml, "device.yaml", extra);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("device: parse_device accepts cpu, cuda and cuda:N and names the key otherwise", "[train][device]") {
  REQUIRE(parse_device("cpu") == Device::cpu());
  REQUIRE(parse_device("cuda") == Device::cuda(0));
  REQUIRE(parse_device("cuda:2") == Device::cuda(2));
  for (const char* bad : {"gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda0", "", "cpu:0", "cuda:123456"}) {
    INFO(bad);
    const std::string msg = test::error_of([&] { parse_device(bad, "--device"); });
    REQUIRE_THAT(msg, Catch::StartsWith("--device: unknown device '" + std::string(bad) + "'") &&
                          Catch::Contains("allowed: cpu, cuda, cuda:N"));
  }
}

TEST_CASE("device: a CUDA device that is not there is a clear error", "[train][device]") {
  REQUIRE(resolve_device("cpu") == Device::cpu());
  if (gpu_present()) {
    WARN("a GPU is present: the no-GPU messages are not checked here");
    return;
  }
  REQUIRE(test::error_of([] { resolve_device("cuda"); }) == no_gpu_message("train.device", "cuda"));
  REQUIRE(test::error_of([] { resolve_device("cuda:1", "bench --device"); }) ==
          no_gpu_message("bench --device", "cuda:1"));
  // The trainer checks before it opens the data (this dataset folder does not exist).
  ExperimentConfig c = small_config({"train.device=cuda", "data.dataset=mnist", "data.path=/nonexistent"});
  test::TempDir tmp("device_trainer");
  REQUIRE(test::error_of([&] { Trainer(c, quiet(tmp.file("run"))); }) == no_gpu_message("train.device", "cuda"));
  // So do the bench and a loader asked for CUDA batches.
  StepBenchOptions o;
  o.device = "cuda";
  REQUIRE(test::error_of([&] { bench_training_step(o); }) == no_gpu_message("bench --device", "cuda"));
  SyntheticDataset ds(8, {1, 4, 4}, 2, 1);
  LoaderOptions lo;
  lo.device = Device::cuda(0);
  REQUIRE_THAT(test::error_of([&] { DataLoader l(ds, lo); }), Catch::Contains("cuda"));
}

TEST_CASE("device: config keys train.device, deterministic, allow_tf32", "[train][device][config]") {
  ExperimentConfig c = small_config();
  REQUIRE(c.train.device == "cpu");
  REQUIRE(c.train.deterministic);
  REQUIRE_FALSE(c.train.allow_tf32);
  c = small_config({"train.device=cuda:1", "train.deterministic=false", "train.allow_tf32=true"});
  REQUIRE(c.train.device == "cuda:1");
  REQUIRE_FALSE(c.train.deterministic);
  REQUIRE(c.train.allow_tf32);
  REQUIRE(load_config_string(to_yaml(c), "emitted.yaml") == c);  // parsing does not need the GPU
  REQUIRE_THAT(test::error_of([] { small_config({"train.device=gpu"}); }),
               Catch::Contains("train.device") && Catch::Contains("unknown value 'gpu'"));
  REQUIRE_THAT(test::error_of([] { small_config({"train.allow_tf32=maybe"}); }), Catch::Contains("train.allow_tf32"));
}

TEST_CASE("Module::to(cpu) on a CPU model is a no-op that keeps every handle", "[train][device][layers]") {
  Generator g(1);
  ModelOptions mo;
  mo.batch_norm = true;
  ModulePtr m = build_model("lenet5", mo, g);
  REQUIRE(m->device() == Device::cpu());
  const NamedTensors before = m->state_dict();
  std::vector<const void*> data;
  for (const auto& [n, t] : before) data.push_back(t.raw_data());
  SGD opt(m->named_parameters(), SgdOptions{});
  REQUIRE(&m->to(Device::cpu()) == m.get());
  const NamedTensors after = m->state_dict();
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    INFO(before[i].first);
    REQUIRE(after[i].second.is_same(before[i].second));
    REQUIRE(after[i].second.raw_data() == data[i]);
  }
  for (const auto& [n, p] : m->named_parameters()) REQUIRE(opt.param(n).is_same(p));
}

TEST_CASE("topk_hits (ops) counts exactly what count_topk counts", "[train][device]") {
  Generator g(8);
  for (int64_t classes : {3, 10}) {
    // Values on a coarse grid, so ties with the target are frequent.
    Tensor logits = Tensor::randint(-3, 4, {64, classes}, g, DType::i64).to(DType::f32);
    Tensor labels = Tensor::randint(0, classes, {64}, g);
    for (int64_t k : {1, 2, 5}) {
      INFO(classes << " classes, top-" << k);
      const int64_t host = count_topk(logits, labels, k);
      REQUIRE(topk_hits(logits, labels, k).item() == double(host));
      REQUIRE(host > 0);
    }
  }
  REQUIRE(topk_hits(Tensor::zeros({0, 4}), Tensor::zeros({0}, DType::i64), 1).item() == 0);
  REQUIRE_THAT(test::error_of([] { count_topk(Tensor::zeros({2, 3}), Tensor::zeros({3}, DType::i64), 1); }),
               Catch::Contains("count_topk"));
}

TEST_CASE("trainer: resume with --set train.device continues exactly and says where", "[train][device]") {
  test::TempDir tmp("device_resume");
  RunSummary whole = Trainer(small_config(), quiet(tmp.file("whole"))).fit();
  REQUIRE(Trainer(small_config({"train.device=cpu"}), quiet(tmp.file("split"), 4)).fit().interrupted);
  auto resumed = Trainer::resume(tmp.file("split"), {"train.device=cpu"}, quiet(""));
  REQUIRE(resumed->device() == Device::cpu());
  RunSummary second = resumed->fit();
  REQUIRE(second.steps == whole.steps);
  const NamedTensors a = load_checkpoint(tmp.file("whole/last.safetensors")).model;
  const NamedTensors b = load_checkpoint(tmp.file("split/last.safetensors")).model;
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i)
    REQUIRE(std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(), a[i].second.nbytes()) == 0);
  auto ra = MetricsLog::read(tmp.file("whole")), rb = MetricsLog::read(tmp.file("split"));
  REQUIRE(ra.back().train_loss == rb.back().train_loss);
  REQUIRE(ra.back().test_acc == rb.back().test_acc);
  const std::string log = slurp(tmp.file("split/train.log"));
  REQUIRE_THAT(log, Catch::Contains("continuing on cpu"));
  REQUIRE_THAT(log, !Catch::Contains("warning: --set train.device"));
}

TEST_CASE("step bench: the JSON line names the device and the total peak", "[train][device]") {
  StepBenchOptions o;
  o.model = "mlp";
  o.batch = 4;
  o.steps = 1;
  o.warmup = 0;
  o.threads = 1;
  o.device = "cpu";
  StepBenchResult r = bench_training_step(o);
  REQUIRE(r.device == "cpu");
  REQUIRE(r.peak_total_bytes >= r.peak_bytes);
  const std::string j = step_bench_json(r, o);
  REQUIRE_THAT(j, Catch::Contains("\"device\":\"cpu\"") && Catch::Contains("\"peak_total_bytes\":"));
  o.device = "tpu";
  REQUIRE_THAT(test::error_of([&] { bench_training_step(o); }), Catch::StartsWith("bench --device: unknown device 'tpu'"));
}
