// Trainer::fit: the epoch loop, the step, end-of-epoch evaluation, checkpoints and the summary.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "../core/autograd.h"
#include "../core/ops/elementwise.h"
#include "../core/ops/loss.h"
#include "../optim/clip.h"
#include "../quant/report.h"
#include "metrics.h"
#include "progress.h"
#include "stop_signal.h"
#include "trainer.h"

namespace fs = std::filesystem;

namespace lowbit {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string pct(double f) { return fmt("%.2f%%", 100.0 * f); }

// Device runs read their running sums back every this many steps (and at epoch ends and stops),
// so the host queues steps ahead of the GPU instead of waiting for each loss.
constexpr int64_t kFlushSteps = 25;

int64_t count_parameters(Module& m) {
  int64_t n = 0;
  for (const Tensor& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace

double Trainer::current_lr() const { return optimizer_->groups().back().lr; }

EvalResult Trainer::evaluate_now() { return evaluate(*model_, *test_loader_); }

void Trainer::accumulate_on_device(const Tensor& loss, const Tensor& logits, const Tensor& labels) {
  NoGradGuard no_grad;
  const int64_t n = labels.numel();
  Tensor l = mul(loss.detach(), double(n));
  Tensor hits = topk_hits(logits.detach(), labels, 1);
  if (pending_samples_ == 0) {
    pending_loss_ = l;
    pending_correct_ = hits;
    pending_first_step_ = state_.step;
  } else {
    pending_loss_ = add(pending_loss_, l);
    pending_correct_ = add(pending_correct_, hits);
  }
  pending_samples_ += n;
}

void Trainer::flush_running_sums() {
  if (pending_samples_ == 0) return;
  const double l = pending_loss_.item();  // waits for the queued steps
  LOWBIT_CHECK(std::isfinite(l), "training", "the loss is ", l, " in epoch ", state_.epoch + 1, " between steps ",
               pending_first_step_ + 1, " and ", state_.step,
               "; lower optim.lr or set optim.clip_grad_norm (last.safetensors holds the last good epoch)");
  state_.epoch_loss_sum += l;
  state_.epoch_correct += static_cast<int64_t>(std::llround(pending_correct_.item()));
  state_.epoch_samples += pending_samples_;
  pending_loss_ = pending_correct_ = Tensor();
  pending_samples_ = 0;
}

void Trainer::save_last() {
  save_checkpoint((fs::path(run_dir_) / "last.safetensors").string(), *model_, optimizer_.get(), state_,
                  to_yaml(config_), {{"model", config_.model.name}});
}

RunSummary Trainer::fit() {
  std::unique_ptr<StopSignal> signal;
  if (options_.handle_signals) signal = std::make_unique<StopSignal>();
  RunSummary summary;
  summary.run_dir = run_dir_;
  const auto start = Clock::now();

  if (fresh_) {
    log(detail::cat("run ", run_dir_));
    log(detail::cat("model ", config_.model.name, ": ", count_parameters(*model_), " parameters; data ",
                    config_.data.dataset, ": ", data_.train->size(), " train / ", data_.test->size(), " test, ",
                    train_loader_->num_batches(), " steps per epoch; ", config_.train.threads, " threads",
                    device_.is_cpu() ? "" : "; device " + device_.str()));
    if (!init_report_.empty()) log("init_from: " + init_report_);
    if (state_.step == 0) calibrate();
  } else {
    log(detail::cat("resuming ", run_dir_, " at epoch ", state_.epoch + 1, ", batch ", state_.batch, " (step ",
                    state_.step, ")"));
  }

  while (state_.epoch < config_.train.epochs) {
    if (!train_one_epoch(signal.get())) {
      summary.interrupted = true;
      log(detail::cat("stopped at epoch ", state_.epoch + 1, ", batch ", state_.batch,
                      "; last.safetensors saved. Continue with: lowbit train --resume ", run_dir_));
      break;
    }
  }
  summary.epochs_done = state_.epoch;
  summary.steps = state_.step;
  summary.final_eval = last_eval_;
  summary.best_top1 = state_.best_top1;
  summary.best_epoch = state_.best_epoch;
  summary.seconds = since(start);
  if (!summary.interrupted) {
    if (quantized_) logger_->info("\n" + quant_report(*model_).table());
    logger_->info("\n" + format_summary(summary, config_));
  }
  return summary;
}

bool Trainer::train_one_epoch(StopSignal* signal) {
  DataLoader& loader = *train_loader_;
  loader.begin_epoch(state_.epoch);
  if (state_.batch > 0) loader.skip_to(state_.batch);
  const int64_t batches = loader.num_batches();
  progress_->begin_epoch(state_.epoch, config_.train.epochs, batches, state_.batch);
  model_->train();
  const auto epoch_start = Clock::now();
  const double seconds_before = state_.epoch_seconds;
  const int64_t samples_before = state_.epoch_samples;
  std::vector<std::pair<std::string, Module*>> modules = model_->named_modules();

  for (Batch b; loader.next(b);) {
    const int64_t t = config_.schedule.per_iteration ? state_.step : state_.epoch;
    schedule_->apply(*optimizer_, t);
    optimizer_->zero_grad();
    Tensor logits = model_->forward(b.images);
    Tensor loss = cross_entropy(logits, b.labels);
    Tensor total = loss;
    for (auto& [name, m] : modules)
      if (Tensor r = m->regularizer(); r.defined()) total = add(total, r);
    total.backward();
    if (config_.optim.clip_grad_norm > 0) clip_grad_norm(*optimizer_, config_.optim.clip_grad_norm);
    optimizer_->step();
    ++state_.step;
    ++state_.batch;
    ++steps_this_process_;
    for (auto& [name, m] : modules) m->on_step(*this);

    if (device_.is_cpu()) {
      const double l = loss.item();
      LOWBIT_CHECK(std::isfinite(l), "training",
                   "the loss is ", l, " at epoch ", state_.epoch + 1, ", step ", state_.step,
                   "; lower optim.lr or set optim.clip_grad_norm (last.safetensors holds the last good epoch)");
      const int64_t n = b.labels.numel();
      state_.epoch_loss_sum += l * double(n);
      state_.epoch_correct += count_topk(logits, b.labels, 1);
      state_.epoch_samples += n;
    } else {
      accumulate_on_device(loss, logits, b.labels);
    }

    const bool stop = (signal && StopSignal::requested()) ||
                      (options_.stop_after_steps >= 0 && steps_this_process_ >= options_.stop_after_steps);
    // Device runs show progress only when their sums are read back.
    if (!device_.is_cpu() && !stop && state_.batch % kFlushSteps != 0 && state_.batch != batches) continue;
    flush_running_sums();
    const double elapsed = since(epoch_start);
    const double sps = double(state_.epoch_samples - samples_before) / std::max(elapsed, 1e-9);
    const double eta = (double(batches - state_.batch) * double(config_.train.batch_size) +
                        double(config_.train.epochs - state_.epoch - 1) * double(data_.train->size())) /
                       std::max(sps, 1e-9);
    progress_->update(state_.batch - 1, state_.epoch_loss_sum / double(state_.epoch_samples),
                      double(state_.epoch_correct) / double(state_.epoch_samples), sps, eta);

    if (stop && state_.batch < batches) {
      state_.epoch_seconds = seconds_before + since(epoch_start);
      save_last();
      progress_->end_epoch();
      return false;
    }
  }
  flush_running_sums();
  progress_->end_epoch();
  state_.epoch_seconds = seconds_before + since(epoch_start);
  end_epoch(state_.epoch_seconds);
  const bool stop = (signal && StopSignal::requested()) ||
                    (options_.stop_after_steps >= 0 && steps_this_process_ >= options_.stop_after_steps);
  return !(stop && state_.epoch < config_.train.epochs);
}

void Trainer::end_epoch(double epoch_seconds) {
  for (auto& [name, m] : model_->named_modules()) m->on_epoch_end(*this);
  const int64_t e = state_.epoch + 1;  // 1-based, as printed and in the metrics
  EpochMetrics m;
  m.epoch = e;
  m.step = state_.step;
  m.train_loss = state_.epoch_samples ? state_.epoch_loss_sum / double(state_.epoch_samples) : 0;
  m.train_acc = state_.epoch_samples ? double(state_.epoch_correct) / double(state_.epoch_samples) : 0;
  m.lr = current_lr();
  m.seconds = epoch_seconds;
  m.samples_per_s = epoch_seconds > 0 ? double(state_.epoch_samples) / epoch_seconds : 0;
  const bool evaluate_now = e % config_.train.eval_interval == 0 || e == config_.train.epochs;
  std::string line = detail::cat("epoch ", e, "/", config_.train.epochs, "  train loss ", fmt("%.4f", m.train_loss), " acc ",
                                 pct(m.train_acc));
  if (evaluate_now) {
    if (config_.train.bn_recalibration > 0) recalibrate_batch_norm(config_.train.bn_recalibration);
    last_eval_ = evaluate(*model_, *test_loader_);
    m.evaluated = true;
    m.test_loss = last_eval_.loss;
    m.test_acc = last_eval_.top1;
    m.test_top5 = last_eval_.top5;
    line += detail::cat("  test loss ", fmt("%.4f", m.test_loss), " top-1 ", pct(m.test_acc), " top-5 ", pct(m.test_top5));
    if (last_eval_.top1 > state_.best_top1) {
      state_.best_top1 = last_eval_.top1;
      state_.best_epoch = e;
      TrainState at = state_;
      at.epoch = e;
      at.batch = 0;
      save_checkpoint((fs::path(run_dir_) / "best.safetensors").string(), *model_, nullptr, at,
                      to_yaml(config_), {{"model", config_.model.name}, {"top1", std::to_string(last_eval_.top1)}});
    }
  }
  if (evaluate_now) report_quantization(m);
  line += detail::cat("  lr ", fmt("%.3g", m.lr), "  ", Progress::format_duration(epoch_seconds), "  ",
                      static_cast<int64_t>(m.samples_per_s), " samples/s");
  log(line);
  metrics_->append(m);
  state_.epoch = e;
  state_.batch = 0;
  state_.epoch_loss_sum = state_.epoch_seconds = 0;
  state_.epoch_correct = state_.epoch_samples = 0;
  save_last();
}

void Trainer::report_quantization(EpochMetrics& row) {
  QuantModelReport r = quant_report(*model_);
  const std::string path = (fs::path(run_dir_) / "quant_report.json").string();
  {
    std::ofstream out(path + ".tmp", std::ios::trunc);
    out << r.to_json();
    LOWBIT_CHECK(out.good(), path, "cannot write the quantization report");
  }
  fs::rename(path + ".tmp", path);
  if (!quantized_) return;
  log("quant: " + r.short_line());
  for (const auto& [name, bits] : r.bits_map()) row.extra[name] = bits;
  for (const auto& [name, value] : r.scales_map()) row.extra[name] = value;
  row.extra["avg_weight_bits"] = r.avg_weight_bits;
}

std::string format_summary(const RunSummary& s, const ExperimentConfig& c) {
  std::string t;
  auto row = [&t](const std::string& k, const std::string& v) { t += detail::cat("  ", k, std::string(14 - k.size(), ' '), v, "\n"); };
  row("run", s.run_dir);
  row("model", c.model.name + " on " + c.data.dataset);
  row("epochs", detail::cat(s.epochs_done, " (", s.steps, " steps)"));
  if (s.final_eval.samples > 0) {
    row("test top-1", pct(s.final_eval.top1));
    row("test top-5", pct(s.final_eval.top5));
    row("test loss", fmt("%.4f", s.final_eval.loss));
  }
  if (s.best_epoch > 0) row("best top-1", detail::cat(pct(s.best_top1), " (epoch ", s.best_epoch, ")"));
  row("time", Progress::format_duration(s.seconds));
  return t;
}

}  // namespace lowbit
