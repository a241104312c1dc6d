// Every experiment and sweep file in configs/ loads, builds its (quantized) model and trains
// a few steps on synthetic data of its dataset's shape.
#include <catch2/catch.hpp>

#include <filesystem>

#include "support/test_util.h"
#include "train/sweep.h"
#include "train/trainer.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> yaml_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("configs: every experiment file trains on synthetic data of its shape", "[configs]") {
  const auto files = yaml_files(LOWBIT_CONFIGS_DIR);
  REQUIRE(files.size() >= 4);
  for (const std::string& f : files) {
    INFO(f);
    test::TempDir tmp("shipped_config");
    ExperimentConfig c = load_config(f);
    const bool cifar = c.data.dataset.rfind("cifar", 0) == 0;
    const int classes = c.data.dataset == "cifar100" ? 100 : 10;
    c = load_config(f, {"data.dataset=synthetic", "data.normalize=~",
                        "data.synthetic={train_size: 48, test_size: 16, channels: " + std::string(cifar ? "3" : "1") +
                            ", image_size: " + std::string(cifar ? "32" : "28") +
                            ", classes: " + std::to_string(classes) + "}",
                        "train.batch_size=8", "train.epochs=1", "train.bn_recalibration=0"});
    TrainerOptions o;
    o.run_dir = tmp.file("run");
    o.console = false;
    o.progress_line = false;
    o.handle_signals = false;
    o.stop_after_steps = 2;
    RunSummary s = Trainer(c, o).fit();
    REQUIRE(s.steps == 2);
    REQUIRE(fs::exists(tmp.file("run/last.safetensors")));
  }
}

TEST_CASE("configs: every sweep file expands and every run's config and quantizers check out", "[configs]") {
  const auto files = yaml_files(fs::path(LOWBIT_CONFIGS_DIR) / "sweeps");
  REQUIRE(!files.empty());
  for (const std::string& f : files) {
    INFO(f);
    test::TempDir tmp("shipped_sweep");
    SweepPlan p = plan_sweep(f, {}, tmp.file("out"));
    REQUIRE(!p.runs.empty());
  }
}
