// `lowbit train CONFIG [--set k=v]... | --resume RUN_DIR`: one training run, resumable.
#include <cstdio>

#include "../core/error.h"
#include "../train/trainer.h"
#include "commands.h"

namespace lowbit::cli {
namespace {

struct TrainArgs {
  std::string config, resume, run_dir, device;
  std::vector<std::string> overrides;
  bool quiet = false, no_progress = false;
};

void run_train(TrainArgs a) {
  // --device is train.device given last, so it wins over the file and any --set.
  if (!a.device.empty()) a.overrides.push_back("train.device=" + a.device);
  TrainerOptions options;
  options.run_dir = a.run_dir;
  options.console = !a.quiet;
  if (a.no_progress) options.progress_line = false;
  std::unique_ptr<Trainer> trainer;
  if (!a.resume.empty()) {
    LOWBIT_CHECK(a.config.empty(), "lowbit train", "give either CONFIG or --resume RUN_DIR, not both ",
                 "(a resumed run uses RUN_DIR/config.yaml; --set still applies)");
    LOWBIT_CHECK(a.run_dir.empty(), "lowbit train", "--run-dir cannot be combined with --resume");
    trainer = Trainer::resume(a.resume, a.overrides, options);
  } else {
    LOWBIT_CHECK(!a.config.empty(), "lowbit train", "missing CONFIG (a YAML experiment file, e.g. ",
                 "configs/lenet5_fmnist.yaml) or --resume RUN_DIR");
    trainer = std::make_unique<Trainer>(load_config(a.config, a.overrides), options);
  }
  RunSummary s = trainer->fit();
  // The final result on stdout, so scripts can read it while logs go to stderr.
  if (s.final_eval.samples > 0)
    std::printf("%s: test top-1 %.2f%%, top-5 %.2f%%, loss %.4f after %lld epochs%s\n", s.run_dir.c_str(),
                100 * s.final_eval.top1, 100 * s.final_eval.top5, s.final_eval.loss,
                static_cast<long long>(s.epochs_done), s.interrupted ? " (interrupted)" : "");
  else
    std::printf("%s: stopped after %lld steps%s\n", s.run_dir.c_str(), static_cast<long long>(s.steps),
                s.interrupted ? " (interrupted; resume with --resume)" : "");
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "train a model from a YAML experiment file");
  cmd->add_option("config", a->config, "experiment file (configs/*.yaml)");
  cmd->add_option("--set", a->overrides, "override a config key: --set train.epochs=2 (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->add_option("--resume", a->resume, "continue the run in RUN_DIR from its last.safetensors")
      ->type_name("RUN_DIR");
  cmd->add_option("--run-dir", a->run_dir, "write the run here instead of output.dir/<name>-<time>");
  cmd->add_option("--device", a->device,
                  "cpu, cuda or cuda:N (overrides train.device; with --resume, continues on that device)");
  cmd->add_flag("-q,--quiet", a->quiet, "no log lines on stderr (train.log still gets them)");
  cmd->add_flag("--no-progress", a->no_progress, "no live progress line, periodic log lines instead");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace lowbit::cli
