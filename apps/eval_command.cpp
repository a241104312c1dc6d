// `lowbit eval CHECKPOINT`: test loss, top-1 and top-5 of saved weights on the config's test split.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "../core/error.h"
#include "../core/parallel.h"
#include "../train/checkpoint.h"
#include "../train/evaluate.h"
#include "../train/experiment.h"
#include "commands.h"

namespace lowbit::cli {
namespace {

struct EvalArgs {
  std::string checkpoint, config, data;
  std::vector<std::string> overrides;
  int64_t batch = 0;
  int threads = 0;
  bool json = false;
};

void run_eval(const EvalArgs& a) {
  CheckpointContents ckpt = load_checkpoint(a.checkpoint);
  ExperimentConfig config;
  if (!a.config.empty()) {
    config = load_config(a.config, a.overrides);
  } else {
    LOWBIT_CHECK(!ckpt.config_yaml.empty(), a.checkpoint, "has no embedded config (not written by lowbit train)",
                 "; pass the experiment file with --config");
    config = load_config_string(ckpt.config_yaml, a.checkpoint + " (embedded config)", a.overrides);
  }
  if (!a.data.empty()) config.data.path = a.data;
  if (a.batch > 0) config.train.batch_size = static_cast<int>(a.batch);
  set_num_threads(a.threads > 0 ? a.threads : config.train.threads);

  ExperimentData data = make_data(config.data, config.train.seed);
  Generator gen(config.train.seed);
  ModulePtr model = make_model(config.model, *data.train, gen);
  LoadReport report = model->load_state_dict(ckpt.model, /*strict=*/false);
  std::string problems;
  for (const auto& n : report.missing) problems += " missing '" + n + "';";
  for (const auto& n : report.unexpected) problems += " unexpected '" + n + "';";
  for (const auto& m : report.shape_mismatch)
    problems += " '" + m.name + "' is " + shape_str(m.got) + ", model wants " + shape_str(m.expected) + ";";
  LOWBIT_CHECK(problems.empty(), a.checkpoint, "does not fit model '", config.model.name, "':", problems);

  LoaderOptions lo;
  lo.batch_size = config.train.batch_size;
  lo.shuffle = false;
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
  CLI::App* cmd = app.add_subcommand("eval", "evaluate a checkpoint on the test split of its dataset");
  cmd->add_option("checkpoint", a->checkpoint, "a .safetensors file (best.safetensors, last.safetensors, ...)")
      ->required();
  cmd->add_option("--config", a->config, "experiment file (default: the config embedded in the checkpoint)");
  cmd->add_option("--data", a->data, "dataset folder (overrides data.path)");
  cmd->add_option("--set", a->overrides, "override a config key (repeatable)")->type_name("KEY=VALUE");
  cmd->add_option("--batch", a->batch, "evaluation batch size (default: train.batch_size)");
  cmd->add_option("--threads", a->threads, "threads (default: train.threads)");
  cmd->add_flag("--json", a->json, "one JSON object on stdout");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace lowbit::cli
