// Trainer: runs an ExperimentConfig end to end in a run directory, resumable exactly.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../data/loader.h"
#include "../layers/training_context.h"
#include "checkpoint.h"
#include "config.h"
#include "evaluate.h"
#include "experiment.h"

namespace spdlog {
class logger;
}

namespace lowbit {

class MetricsLog;
class Progress;

struct TrainerOptions {
  // The run directory; empty: <output.dir>/<output.name>-<YYYYmmdd-HHMMSS> (made unique).
  std::string run_dir;
  bool console = true;                // log lines to stderr (train.log gets them regardless)
  std::optional<bool> progress_line;  // live progress line; default: when stderr is a terminal
  bool handle_signals = true;         // SIGINT/SIGTERM stop after the current step
  // Stop (as a signal would) once this many optimizer steps have run in this process; -1: no.
  // For tests of interruption and resume.
  int64_t stop_after_steps = -1;
};

struct RunSummary {
  std::string run_dir;
  bool interrupted = false;
  int64_t epochs_done = 0, steps = 0;
  EvalResult final_eval;  // the last evaluation (samples == 0 if none ran)
  double best_top1 = -1;
  int64_t best_epoch = -1;  // 1-based
  double seconds = 0;
};

class Trainer : public TrainingContext {
 public:
  // A fresh run: builds data, model (init_from applied), optimizer and schedule; creates the
  // run directory and writes config.yaml. Every config problem throws before any training.
  explicit Trainer(ExperimentConfig config, TrainerOptions options = {});
  // Continues the run in `run_dir` from its last.safetensors with its config.yaml; `overrides`
  // (--set) are applied to that config (changing anything but train.epochs or eval_interval
  // makes the continuation differ from an uninterrupted run, and a warning says so).
  static std::unique_ptr<Trainer> resume(const std::string& run_dir, const std::vector<std::string>& overrides = {},
                                         TrainerOptions options = {});
  ~Trainer() override;

  // Trains to the configured number of epochs (or until stopped), evaluating every
  // eval_interval epochs and at the end; writes metrics, last and best checkpoints.
  RunSummary fit();

  const ExperimentConfig& config() const { return config_; }
  const std::string& run_dir() const { return run_dir_; }
  Optimizer& optimizer() { return *optimizer_; }
  const TrainState& state() const { return state_; }
  DataLoader& train_loader() { return *train_loader_; }
  DataLoader& test_loader() { return *test_loader_; }
  const ExperimentData& data() const { return data_; }
  // Where the model, the batches and the running sums live (train.device, checked at setup).
  Device device() const { return device_; }
  EvalResult evaluate_now();

  // ---- TrainingContext ----
  int64_t epoch() const override { return state_.epoch; }
  int64_t epochs() const override { return config_.train.epochs; }
  int64_t step() const override { return state_.step; }
  int64_t total_steps() const override;
  Module& model() override { return *model_; }
  std::string name_of(const Module& m) override;
  void replace_parameter(const std::string& full_name, Tensor value) override;
  void recalibrate_batch_norm(int64_t batches) override;

 private:
  Trainer(ExperimentConfig config, TrainerOptions options, const CheckpointContents* resume_from);

  void setup(const CheckpointContents* resume_from);
  void init_from_checkpoint(const std::string& path);
  void restore(const CheckpointContents& ckpt);
  void calibrate();
  // Forwards up to n shuffled training batches (no gradients) in the model's current modes.
  void forward_training_batches(int64_t n, const std::string& purpose);
  bool train_one_epoch(class StopSignal* signal);  // false when stopped
  // Device runs: adds a step's loss and top-1 hits to sums kept on the device (no host wait);
  // flush_running_sums() moves them into state_ (one wait) and checks the loss is finite;
  // nothing happens when nothing is pending (always so on the CPU).
  void accumulate_on_device(const Tensor& loss, const Tensor& logits, const Tensor& labels);
  void flush_running_sums();
  void end_epoch(double epoch_seconds);
  void save_last();
  // quant_report.json in the run directory (every run has one: float layers count 32 bits),
  // the short form in the log and the bits per layer in the metrics row.
  void report_quantization(struct EpochMetrics& row);
  double current_lr() const;
  void log(const std::string& line);

  ExperimentConfig config_;
  TrainerOptions options_;
  Device device_;
  std::string run_dir_;
  std::shared_ptr<spdlog::logger> logger_;
  ExperimentData data_;
  ModulePtr model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::shared_ptr<const LrSchedule> schedule_;
  std::unique_ptr<DataLoader> train_loader_, test_loader_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<Progress> progress_;
  TrainState state_;
  EvalResult last_eval_;
  Generator run_gen_;
  int64_t steps_this_process_ = 0;
  // Device runs: loss * batch and top-1 hits summed on the device since the last flush, and
  // the samples and first step they cover (the host knows those without waiting).
  Tensor pending_loss_, pending_correct_;
  int64_t pending_samples_ = 0, pending_first_step_ = 0;
  bool fresh_ = true;
  bool quantized_ = false;
  std::string init_report_;  // what model.init_from loaded and derived
};

// The summary table printed at the end of a run.
std::string format_summary(const RunSummary& s, const ExperimentConfig& config);

}  // namespace lowbit
