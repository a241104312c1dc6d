// `lowbit eval CHECKPOINT|EXPORT_DIR`: test loss, top-1 and top-5 on the config's test split.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "../core/error.h"
#include "../core/parallel.h"
#include "../quant/export.h"
#include "../train/device.h"
#include "../train/evaluate.h"
#include "../train/load_model.h"
#include "commands.h"

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;

struct EvalArgs {
  std::string checkpoint, config, data, device;
  std::vector<std::string> overrides;
  int64_t batch = 0;
  int threads = 0;
  bool json = false;
};

// An export folder (lowbit export) holds config.yaml beside the manifest; its model is the
// float architecture with the dequantized weights and fixed activation quantizers.
ModulePtr load_export(const EvalArgs& a, ExperimentConfig& config) {
  const fs::path dir(a.checkpoint);
  const fs::path cfg = a.config.empty() ? dir / "config.yaml" : fs::path(a.config);
  LOWBIT_CHECK(fs::exists(cfg), cfg.string(), "is missing: an export folder needs the config it was trained with",
               " (lowbit export writes it; or pass --config)");
  config = load_config(cfg.string(), a.overrides);
  ExperimentConfig float_config = config;
  float_config.quant.yaml.clear();
  Generator gen(config.train.seed);
  ModulePtr model = make_experiment_model(float_config, gen).model;
  load_exported_into(*model, a.checkpoint);
  return model;
}

// --device when given (strictly: a missing GPU is an error). Otherwise the device the run
// trained on where it exists here, else the CPU with a note: checkpoints load onto any device.
Device eval_device(const EvalArgs& a, const ExperimentConfig& config, bool quantized) {
  if (!a.device.empty()) {
    const Device d = resolve_device(a.device, "eval --device");
    LOWBIT_CHECK(!quantized || d.is_cpu(), "eval --device", "a quantized model evaluates on the CPU only for now ",
                 "(quantizers have no CUDA kernels yet); use --device cpu");
    return d;
  }
  const std::string& wanted = config.train.device;
  if (wanted == "cpu" || quantized) return Device::cpu();
  try {
    return resolve_device(wanted);
  } catch (const Error& e) {
    std::fprintf(stderr, "lowbit: note: %s; evaluating on cpu (choose with --device)\n", e.what());
    return Device::cpu();
  }
}

void run_eval(const EvalArgs& a) {
  ExperimentConfig config;
  ModulePtr model;
  if (fs::is_directory(a.checkpoint)) {
    model = load_export(a, config);
  } else {
    TrainedModel t = load_trained_model(a.checkpoint, a.config, a.overrides);
    config = t.config;
    model = t.model.model;
  }
  if (!a.data.empty()) config.data.path = a.data;
  if (a.batch > 0) config.train.batch_size = static_cast<int>(a.batch);
  set_num_threads(a.threads > 0 ? a.threads : config.train.threads);
  // An export folder's model carries fixed activation quantizers, which are CPU-only too.
  const bool quantized = fs::is_directory(a.checkpoint) || parse_quant_config(config.quant.yaml).enabled;
  const Device device = eval_device(a, config, quantized);
  apply_device_settings(device, config.train.deterministic, config.train.allow_tf32);
  model->to(device);

  ExperimentData data = make_data(config.data, config.train.seed);
  LoaderOptions lo;
  lo.batch_size = config.train.batch_size;
  lo.shuffle = false;
  lo.device = device;
  DataLoader loader(*data.test, lo, data.test_transforms);
  EvalResult r = evaluate(*model, loader);
  if (a.json) {
    nlohmann::json j = {{"checkpoint", a.checkpoint}, {"model", config.model.name}, {"dataset", config.data.dataset},
                        {"samples", r.samples},      {"loss", r.loss},             {"top1", r.top1},
                        {"top5", r.top5}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s (%s on %s, %lld test samples): top-1 %.2f%%, top-5 %.2f%%, loss %.4f\n", a.checkpoint.c_str(),
                config.model.name.c_str(), config.data.dataset.c_str(), static_cast<long long>(r.samples),
                100 * r.top1, 100 * r.top5, r.loss);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "evaluate a checkpoint or an exported model on its test split");
  cmd->add_option("checkpoint", a->checkpoint,
                  "a .safetensors file (best.safetensors, ...) or a folder written by lowbit export")
      ->required();
  cmd->add_option("--config", a->config, "experiment file (default: the one embedded in the checkpoint)");
  cmd->add_option("--data", a->data, "dataset folder (overrides data.path)");
  cmd->add_option("--set", a->overrides, "override a config key (repeatable)")->type_name("KEY=VALUE");
  cmd->add_option("--batch", a->batch, "evaluation batch size (default: train.batch_size)");
  cmd->add_option("--threads", a->threads, "threads (default: train.threads)");
  cmd->add_option("--device", a->device,
                  "cpu, cuda or cuda:N (default: the run's train.device where available here, else cpu)");
  cmd->add_flag("--json", a->json, "one JSON object on stdout");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace lowbit::cli
