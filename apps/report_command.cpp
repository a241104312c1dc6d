// `lowbit report RUN_DIR|CHECKPOINT`: the per-layer quantization table and the model-size totals.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "../core/error.h"
#include "../quant/report.h"
#include "../train/load_model.h"
#include "commands.h"

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;

struct ReportArgs {
  std::string target, config, output;
  bool json = false;
};

void run_report(const ReportArgs& a) {
  // A run directory reports its best checkpoint (its last if it has no best yet).
  std::string checkpoint = a.target;
  if (fs::is_directory(a.target)) {
    checkpoint = (fs::path(a.target) / "best.safetensors").string();
    if (!fs::exists(checkpoint)) checkpoint = (fs::path(a.target) / "last.safetensors").string();
    LOWBIT_CHECK(fs::exists(checkpoint), a.target, "holds no best.safetensors or last.safetensors");
  }
  TrainedModel t = load_trained_model(checkpoint, a.config);
  QuantModelReport r = quant_report(*t.model.model);
  // Only where asked: a run's own quant_report.json is the trainer's record of its final model
  // (the sweep table and quant.fixed_bits_from read it), and this reports the best checkpoint.
  const std::string& out = a.output;
  if (!out.empty()) {
    {
      std::ofstream f(out + ".tmp", std::ios::trunc);
      f << r.to_json();
      LOWBIT_CHECK(f.good(), out, "cannot write the report");
    }
    fs::rename(out + ".tmp", out);
  }
  if (a.json) {
    std::printf("%s\n", r.to_json().c_str());
    return;
  }
  std::printf("%s (%s)\n\n%s", checkpoint.c_str(), t.config.model.name.c_str(), r.table().c_str());
  if (!out.empty()) std::printf("\nwritten to %s\n", out.c_str());
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand("report", "per-layer bits, scales, grid occupancy and model size");
  cmd->add_option("target", a->target, "a run directory (its best checkpoint) or a .safetensors checkpoint")
      ->required();
  cmd->add_option("--config", a->config, "experiment file for checkpoints without an embedded config");
  cmd->add_option("-o,--output", a->output,
                  "also write the report as JSON to this file");
  cmd->add_flag("--json", a->json, "print the JSON report instead of the table");
  cmd->callback([a] { run_report(*a); });
}

}  // namespace lowbit::cli
