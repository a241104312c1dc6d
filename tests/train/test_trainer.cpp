// Trainer end to end on synthetic data: loss falls, run directory, exact resume, init_from, errors.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/safetensors.h"
#include "core/ops/reduce.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "optim/sgd.h"
#include "layers/sequential.h"
#include "support/test_util.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/stop_signal.h"
#include "train/trainer.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

ExperimentConfig synthetic_config(const std::string& model = "mlp", int epochs = 2, const std::string& quant = "") {
  std::string yaml = R"(
data: {dataset: synthetic, synthetic: {train_size: 320, test_size: 96}}
optim: {name: adam, lr: 3.0e-3}
schedule: {name: cosine, warmup_epochs: 1, warmup_start_factor: 0.1}
train: {batch_size: 32, seed: 7, threads: 2}
)";
  return load_config_string(yaml, "synthetic.yaml",
                            {"model={name: " + model + ", hidden: [32], batch_norm: true}",
                             "train.epochs=" + std::to_string(epochs), "quant=" + (quant.empty() ? "~" : quant)});
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

NamedTensors model_tensors(const std::string& checkpoint) { return load_checkpoint(checkpoint).model; }

void require_identical(const NamedTensors& a, const NamedTensors& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    REQUIRE(a[i].first == b[i].first);
    REQUIRE(a[i].second.shape() == b[i].second.shape());
    REQUIRE(std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(), a[i].second.nbytes()) == 0);
  }
}

}  // namespace

TEST_CASE("trainer: loss falls on synthetic data and the run directory is complete", "[train]") {
  test::TempDir tmp("trainer_fit");
  Trainer t(synthetic_config("mlp", 3), quiet(tmp.file("run")));
  RunSummary s = t.fit();
  REQUIRE_FALSE(s.interrupted);
  REQUIRE(s.epochs_done == 3);
  REQUIRE(s.steps == 30);
  for (const char* f : {"config.yaml", "metrics.jsonl", "metrics.csv", "train.log", "last.safetensors",
                        "best.safetensors"})
    REQUIRE(fs::exists(fs::path(tmp.file("run")) / f));
  auto rows = MetricsLog::read(tmp.file("run"));
  REQUIRE(rows.size() == 3);
  REQUIRE(rows[2].train_loss < 0.5 * rows[0].train_loss);
  REQUIRE(rows[2].evaluated);
  REQUIRE(s.final_eval.top1 > 0.8);
  REQUIRE(s.final_eval.top5 >= s.final_eval.top1);
  // best.safetensors holds weights only, with the model's own names (PyTorch can load it).
  CheckpointContents best = load_checkpoint(tmp.file("run/best.safetensors"));
  REQUIRE_FALSE(best.resumable());
  REQUIRE(best.model.size() == t.model().state_dict().size());
  // The resolved config reloads to the one the run used.
  REQUIRE(load_config(tmp.file("run/config.yaml")) == t.config());
}

TEST_CASE("trainer: an interrupted and resumed run ends with the same weights", "[train]") {
  test::TempDir tmp("trainer_resume");
  const std::string model = GENERATE(std::string("mlp"), std::string("lenet5"));
  const int64_t stop_at = GENERATE(int64_t(7), int64_t(10));  // mid-epoch and an epoch boundary
  INFO(model << " stopped after " << stop_at << " steps");
  ExperimentConfig c = synthetic_config(model, 2);
  RunSummary whole = Trainer(c, quiet(tmp.file("whole"))).fit();

  RunSummary first = Trainer(c, quiet(tmp.file("split"), stop_at)).fit();
  REQUIRE(first.interrupted);
  REQUIRE(first.steps == stop_at);
  auto resumed = Trainer::resume(tmp.file("split"), {}, quiet(""));
  REQUIRE(resumed->state().step == stop_at);
  RunSummary second = resumed->fit();
  REQUIRE_FALSE(second.interrupted);
  REQUIRE(second.steps == whole.steps);

  require_identical(model_tensors(tmp.file("whole/last.safetensors")),
                    model_tensors(tmp.file("split/last.safetensors")));
  auto a = MetricsLog::read(tmp.file("whole")), b = MetricsLog::read(tmp.file("split"));
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].epoch == b[i].epoch);
    REQUIRE(a[i].train_loss == b[i].train_loss);
    REQUIRE(a[i].train_acc == b[i].train_acc);
    REQUIRE(a[i].test_acc == b[i].test_acc);
    REQUIRE(a[i].lr == b[i].lr);
  }
}

TEST_CASE("trainer: a quantized run with DropBits resumes exactly (quantizer state and streams)", "[train]") {
  test::TempDir tmp("trainer_resume_quant");
  ExperimentConfig c = synthetic_config(
      "lenet5", 2, "{method: cpq, weight_bits: 2, act_bits: 3, dropbits: {enabled: true}, optim: {lr: 1.0e-2}}");
  Trainer(c, quiet(tmp.file("whole"))).fit();
  REQUIRE(Trainer(c, quiet(tmp.file("split"), 7)).fit().interrupted);
  Trainer::resume(tmp.file("split"), {}, quiet(""))->fit();
  require_identical(model_tensors(tmp.file("whole/last.safetensors")),
                    model_tensors(tmp.file("split/last.safetensors")));
  // DropBits drew masks: the quantizers' streams moved and were checkpointed.
  REQUIRE_FALSE(load_checkpoint(tmp.file("split/last.safetensors")).generators.empty());
}

TEST_CASE("trainer: same config, seed and threads give the same numbers", "[train]") {
  test::TempDir tmp("trainer_determinism");
  ExperimentConfig c = synthetic_config("mlp", 1);
  Trainer(c, quiet(tmp.file("a"))).fit();
  Trainer(c, quiet(tmp.file("b"))).fit();
  require_identical(model_tensors(tmp.file("a/last.safetensors")), model_tensors(tmp.file("b/last.safetensors")));
}

TEST_CASE("trainer: model.init_from loads weights, names what does not fit", "[train]") {
  test::TempDir tmp("trainer_init_from");
  ExperimentConfig c = synthetic_config("mlp", 1);
  Trainer source(c, quiet(tmp.file("source")));
  // A plain state_dict file, as safetensors.torch.save_file(model.state_dict()) writes.
  NamedTensors sd = source.model().state_dict();
  for (auto& [n, t] : sd) t = t.clone();
  save_safetensors(tmp.file("plain.safetensors"), sd);

  ExperimentConfig c2 = c;
  c2.model.init_from = tmp.file("plain.safetensors");
  c2.train.seed = 99;  // a different random init, overwritten by the file
  Trainer loaded(c2, quiet(tmp.file("loaded")));
  require_identical(loaded.model().state_dict(), sd);

  ExperimentConfig wider = c2;
  wider.model.hidden = {48};
  std::string e = test::error_of([&] { Trainer(wider, quiet(tmp.file("wider"))); });
  REQUIRE_THAT(e, Catch::Contains("model.init_from"));
  REQUIRE_THAT(e, Catch::Contains("'0.weight' has shape [32, 784]") || Catch::Contains("has shape"));

  sd.pop_back();
  sd.emplace_back("extra.weight", Tensor::zeros({2}));
  save_safetensors(tmp.file("odd.safetensors"), sd);
  c2.model.init_from = tmp.file("odd.safetensors");
  e = test::error_of([&] { Trainer(c2, quiet(tmp.file("odd"))); });
  REQUIRE_THAT(e, Catch::Contains("unexpected 'extra.weight'"));
  REQUIRE_THAT(e, Catch::Contains("missing '"));

  c2.model.init_from = tmp.file("absent.safetensors");
  REQUIRE_THAT(test::error_of([&] { Trainer(c2, quiet(tmp.file("absent"))); }),
               Catch::Contains("absent.safetensors"));
}

TEST_CASE("trainer: resume refuses what it cannot continue", "[train]") {
  test::TempDir tmp("trainer_resume_errors");
  REQUIRE_THAT(test::error_of([&] { Trainer::resume(tmp.file("nope"), {}, quiet("")); }),
               Catch::Contains("is not a run directory"));
  fs::create_directories(tmp.file("empty"));
  REQUIRE_THAT(test::error_of([&] { Trainer::resume(tmp.file("empty"), {}, quiet("")); }),
               Catch::Contains("config.yaml"));
  ExperimentConfig c = synthetic_config("mlp", 1);
  Trainer(c, quiet(tmp.file("run"))).fit();
  fs::copy_file(tmp.file("run/best.safetensors"), tmp.file("run/last.safetensors"),
                fs::copy_options::overwrite_existing);
  REQUIRE_THAT(test::error_of([&] { Trainer::resume(tmp.file("run"), {}, quiet("")); }),
               Catch::Contains("weights only"));
  // A truncated checkpoint is an error naming the file, never a crash.
  fs::resize_file(tmp.file("run/last.safetensors"), 100);
  REQUIRE_THAT(test::error_of([&] { Trainer::resume(tmp.file("run"), {}, quiet("")); }),
               Catch::Contains("last.safetensors"));
}

TEST_CASE("checkpoint: module generators and optimizer state round-trip", "[train]") {
  test::TempDir tmp("checkpoint_rng");
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Linear>(4, 3));
  net->push_back(std::make_shared<Dropout>(0.5));
  seed_module_generators(*net, Generator(3));
  Generator* g = net->named_modules()[2].second->generator();
  REQUIRE(g != nullptr);
  g->reserve(1234);
  TrainState st;
  st.epoch = 2;
  st.batch = 5;
  st.step = 77;
  st.epoch_loss_sum = 0.1 + 0.2;  // not representable in short decimal: must still round-trip
  SGD opt(net->named_parameters(), SgdOptions{.lr = 0.1, .momentum = 0.9});
  Generator gen(1);
  Tensor x = Tensor::randn({2, 4}, gen);
  sum((*net)(x)).backward();
  opt.step();
  const Generator before = *g;  // the forward drew a dropout mask
  REQUIRE(before.offset() > 1234);
  save_checkpoint(tmp.file("c.safetensors"), *net, &opt, st, "model: {name: mlp}\n");
  CheckpointContents c = load_checkpoint(tmp.file("c.safetensors"));
  REQUIRE(c.resumable());
  REQUIRE(c.generators.at("1") == std::array<uint64_t, 3>{before.seed(), before.stream(), before.offset()});
  REQUIRE(c.state.epoch == 2);
  REQUIRE(c.state.batch == 5);
  REQUIRE(c.state.step == 77);
  REQUIRE(c.state.epoch_loss_sum == 0.1 + 0.2);
  REQUIRE(c.config_yaml == "model: {name: mlp}\n");
  REQUIRE(c.model.size() == 2);
  REQUIRE(c.optimizer.tensors.size() == 2);  // a momentum buffer per parameter
  SGD fresh(net->named_parameters(), SgdOptions{.lr = 0.1, .momentum = 0.9});
  fresh.load_state(c.optimizer);
  REQUIRE(fresh.state("0.weight") != nullptr);
  // Weights-only files carry no generators and no optimizer state.
  save_checkpoint(tmp.file("w.safetensors"), *net, nullptr, st, "");
  CheckpointContents w = load_checkpoint(tmp.file("w.safetensors"));
  REQUIRE(w.generators.empty());
  REQUIRE(w.optimizer.tensors.empty());
}

TEST_CASE("stop signal: SIGINT sets the flag instead of killing the process", "[train]") {
  StopSignal s;
  REQUIRE_FALSE(StopSignal::requested());
  std::raise(SIGINT);
  REQUIRE(StopSignal::requested());
  REQUIRE(StopSignal::signal_number() == SIGINT);
  StopSignal::clear();
}

TEST_CASE("evaluate: top-k counts", "[train]") {
  Tensor logits = Tensor::from_vector(std::vector<float>{0.1f, 0.9f, 0.5f, 0.3f, 0.2f, 0.1f}, {2, 3});
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, 0}, {2});
  REQUIRE(count_topk(logits, labels, 1) == 1);
  REQUIRE(count_topk(logits, labels, 2) == 2);
  REQUIRE(count_topk(logits, labels, 3) == 2);
}

TEST_CASE("evaluate: NaN logits are never a hit", "[train]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Row 0: the target is NaN. Row 1: a NaN ranks above the target. Row 2: all NaN (overflowed).
  Tensor logits = Tensor::from_vector(std::vector<float>{nan, 0.1f, 0.2f, 0.9f, nan, 0.1f, nan, nan, nan}, {3, 3});
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 0, 1}, {3});
  REQUIRE(count_topk(logits, labels, 1) == 0);
  REQUIRE(count_topk(logits, labels, 2) == 1);  // row 1: only the NaN ranks above the target
  REQUIRE(count_topk(logits, labels, 3) == 1);  // a NaN target stays a miss even when k covers every class
  REQUIRE(topk_hits(logits, labels, 1).item() == 0);
  REQUIRE(topk_hits(logits, labels, 2).item() == 1);
  REQUIRE(topk_hits(logits, labels, 3).item() == 1);
}

TEST_CASE("trainer: BatchNorm re-estimation and parameter replacement through the context", "[train]") {
  test::TempDir tmp("trainer_context");
  ExperimentConfig c = synthetic_config("lenet5", 1);
  c.train.bn_recalibration = 3;
  Trainer t(c, quiet(tmp.file("run")));
  t.fit();
  // Re-estimated before the evaluation: a cumulative average over exactly 3 batches.
  Tensor nbt;
  for (auto& [name, v] : t.model().state_dict())
    if (name == "1.num_batches_tracked") nbt = v;
  REQUIRE(nbt.defined());
  REQUIRE(nbt.item() == 3);
  REQUIRE(t.model().is_training());

  // A hook replacing a parameter: the model and the optimizer see the new tensor, fresh state.
  REQUIRE(t.optimizer().state("0.weight") != nullptr);
  Tensor w = Tensor::zeros(t.model().named_parameters()[0].second.shape());
  t.replace_parameter("0.weight", w);
  REQUIRE(t.optimizer().state("0.weight") == nullptr);
  REQUIRE(t.optimizer().param("0.weight").raw_data() == t.model().named_parameters()[0].second.raw_data());
  REQUIRE(t.name_of(*t.model().named_modules()[2].second) == "1");
}

TEST_CASE("trainer: an IDX data set with more classes trains once model.num_classes covers them", "[train]") {
  test::TempDir tmp("trainer_idx_classes");
  // Plain IDX files: magic, dimensions (big-endian u32), then the bytes.
  auto write_idx = [&](const std::string& name, uint32_t magic, std::vector<uint32_t> dims,
                       const std::vector<uint8_t>& data) {
    std::ofstream out(tmp.file(name), std::ios::binary);
    dims.insert(dims.begin(), magic);
    for (uint32_t v : dims)
      for (int s = 24; s >= 0; s -= 8) out.put(static_cast<char>((v >> s) & 0xFF));
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  };
  auto write_split = [&](const std::string& prefix, uint32_t n, uint8_t label_cap) {
    std::vector<uint8_t> px(n * 8 * 8), lab(n);
    for (uint32_t i = 0; i < n; ++i) {
      lab[i] = static_cast<uint8_t>(i % label_cap);
      for (uint32_t j = 0; j < 64; ++j) px[i * 64 + j] = static_cast<uint8_t>((lab[i] * 20 + j) % 256);
    }
    write_idx(prefix + "-images-idx3-ubyte", 2051, {n, 8, 8}, px);
    write_idx(prefix + "-labels-idx1-ubyte", 2049, {n}, lab);
  };
  write_split("train", 48, 12);
  write_split("t10k", 24, 12);
  auto config = [&](int classes) {
    return load_config_string(
        "data: {dataset: mnist, path: '" + tmp.path.string() + "'}\n"
        "model: {name: mlp, hidden: [16], num_classes: " + std::to_string(classes) + "}\n"
        "optim: {name: sgd, lr: 0.1}\ntrain: {epochs: 1, batch_size: 16, threads: 1}\n",
        "idx.yaml");
  };
  CHECK_THAT(test::error_of([&] { Trainer t(config(10), quiet(tmp.file("run10"))); }),
             Catch::Contains("model.num_classes: is 10 but the dataset has 12 classes"));
  Trainer t(config(12), quiet(tmp.file("run12")));
  RunSummary s = t.fit();
  CHECK(s.epochs_done == 1);
  // A test label the training split never has: no output would exist for it.
  write_split("t10k", 26, 13);
  CHECK_THAT(test::error_of([&] { Trainer u(config(13), quiet(tmp.file("run13"))); }),
             Catch::Contains("the test split has 13 classes (labels 0..12) but the training split only 12"));
}
