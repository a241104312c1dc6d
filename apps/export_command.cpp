// `lowbit export CHECKPOINT -o DIR`: packed integer weights, scales and a versioned manifest.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "../core/error.h"
#include "../quant/export.h"
#include "../train/load_model.h"
#include "commands.h"

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string checkpoint, config, output;
};

void run_export(const ExportArgs& a) {
  std::string checkpoint = a.checkpoint;
  if (fs::is_directory(checkpoint)) checkpoint = (fs::path(checkpoint) / "best.safetensors").string();
  TrainedModel t = load_trained_model(checkpoint, a.config);
  t.model.model->eval();
  export_quantized(*t.model.model, a.output);
  // The config travels with the export so `lowbit eval DIR` can rebuild the architecture.
  std::ofstream(fs::path(a.output) / "config.yaml") << to_yaml(t.config);
  int64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(a.output))
    if (e.is_regular_file()) bytes += static_cast<int64_t>(e.file_size());
  std::printf("%s -> %s (%lld bytes: manifest.json, weights.bin, tensors.safetensors, config.yaml)\n",
              checkpoint.c_str(), a.output.c_str(), static_cast<long long>(bytes));
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "write integer codes packed at their bit-width, scales, manifest");
  cmd->add_option("checkpoint", a->checkpoint, "a .safetensors checkpoint or a run directory (its best)")
      ->required();
  cmd->add_option("-o,--output", a->output, "output folder")->required();
  cmd->add_option("--config", a->config, "experiment file for checkpoints without an embedded config");
  cmd->callback([a] { run_export(*a); });
}

}  // namespace lowbit::cli
