// Trainer construction: data, model, init_from, optimizer, loaders, run directory, resume.
#include "trainer.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "../core/autograd.h"
#include "../core/error.h"
#include "../core/parallel.h"
#include "../layers/batch_norm.h"
#include "device.h"
#include "metrics.h"
#include "progress.h"

namespace fs = std::filesystem;

namespace lowbit {
namespace {

std::string timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// <dir>/<name>-<timestamp>, with -2, -3, ... appended while that exists.
std::string new_run_dir(const OutputConfig& out) {
  fs::path base = fs::path(out.dir) / (out.name + "-" + timestamp());
  fs::path p = base;
  for (int k = 2; fs::exists(p); ++k) p = base.string() + "-" + std::to_string(k);
  std::error_code ec;
  fs::create_directories(p, ec);
  LOWBIT_CHECK(!ec, "output.dir", "cannot create the run directory ", p.string(), ": ", ec.message());
  return p.string();
}

void write_text_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    LOWBIT_CHECK(out.good(), path, "cannot write the file");
  }
  fs::rename(tmp, path);
}

std::string list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s;
}

}  // namespace

Trainer::Trainer(ExperimentConfig config, TrainerOptions options)
    : Trainer(std::move(config), std::move(options), nullptr) {}

Trainer::Trainer(ExperimentConfig config, TrainerOptions options, const CheckpointContents* resume_from)
    : config_(std::move(config)), options_(std::move(options)), run_gen_(config_.train.seed) {
  setup(resume_from);
}

Trainer::~Trainer() = default;

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir, const std::vector<std::string>& overrides,
                                         TrainerOptions options) {
  const fs::path dir(run_dir);
  LOWBIT_CHECK(fs::is_directory(dir), run_dir, "is not a run directory",
               " (expected the folder a previous `lowbit train` created)");
  const fs::path last = dir / "last.safetensors", cfg = dir / "config.yaml";
  LOWBIT_CHECK(fs::exists(cfg), cfg.string(), "is missing: cannot resume without the run's config");
  LOWBIT_CHECK(fs::exists(last), last.string(), "is missing: the run saved no checkpoint to resume from");
  ExperimentConfig config = load_config(cfg.string(), overrides);
  CheckpointContents ckpt = load_checkpoint(last.string());
  LOWBIT_CHECK(ckpt.resumable(), last.string(), "holds weights only, not the training state needed to resume");
  options.run_dir = run_dir;
  auto t = std::unique_ptr<Trainer>(new Trainer(std::move(config), std::move(options), &ckpt));
  for (const std::string& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    // Checkpoints are device-independent: another device changes only floating-point rounding.
    if (key == "train.device")
      t->log("continuing on " + t->device().str() + " (checkpoints load onto any device)");
    else if (key != "train.epochs" && key != "train.eval_interval")
      t->log("warning: --set " + key + " on resume: the continuation will differ from an uninterrupted run");
  }
  return t;
}

void Trainer::setup(const CheckpointContents* resume_from) {
  fresh_ = resume_from == nullptr;
  // A missing GPU or a bad quant: section fails before the data loads.
  device_ = resolve_device(config_.train.device);
  apply_device_settings(device_, config_.train.deterministic, config_.train.allow_tf32);
  set_num_threads(config_.train.threads);
  parse_quant_config(config_.quant.yaml);  // a bad quant: section fails here (every method runs on both devices)
  const uint64_t seed = config_.train.seed;
  data_ = make_data(config_.data, seed);
  // The resolved config records the normalization in force, so eval and resume reuse it exactly.
  if (!config_.data.normalize) {
    NormalizeConfig n;
    n.mean.assign(data_.mean.begin(), data_.mean.end());
    n.std.assign(data_.std.begin(), data_.std.end());
    config_.data.normalize = n;
  }
  // Likewise the input shape, so the model can be rebuilt from config.yaml without the data.
  const Shape sample = data_.train->sample_shape();
  if (config_.model.in_channels < 0) config_.model.in_channels = static_cast<int>(sample[0]);
  if (config_.model.image_size < 0) config_.model.image_size = static_cast<int>(sample[1]);
  Generator init_gen = run_gen_.split("init");
  ExperimentModel em = make_experiment_model(config_, *data_.train, init_gen);
  model_ = em.model;
  quantized_ = em.quant.settings.enabled;
  seed_module_generators(*model_, run_gen_);
  if (fresh_ && !config_.model.init_from.empty()) init_from_checkpoint(config_.model.init_from);
  // Moved before the optimizer exists, so its parameters and state are on the device from the start.
  model_->to(device_);
  optimizer_ = make_optimizer(config_.optim, model_->named_parameters(), em.param_groups());

  LoaderOptions lo;
  lo.batch_size = config_.train.batch_size;
  lo.shuffle = true;
  lo.seed = seed;
  lo.device = device_;
  train_loader_ = std::make_unique<DataLoader>(*data_.train, lo, data_.train_transforms);
  lo.shuffle = false;
  test_loader_ = std::make_unique<DataLoader>(*data_.test, lo, data_.test_transforms);
  schedule_ = make_schedule(config_.schedule, config_.train.epochs, train_loader_->num_batches());

  if (resume_from) restore(*resume_from);

  run_dir_ = options_.run_dir.empty() ? new_run_dir(config_.output) : options_.run_dir;
  if (!options_.run_dir.empty()) {
    std::error_code ec;
    fs::create_directories(run_dir_, ec);
    LOWBIT_CHECK(!ec, run_dir_, "cannot create the run directory: ", ec.message());
  }
  std::vector<spdlog::sink_ptr> sinks;
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>((fs::path(run_dir_) / "train.log").string());
  file->set_pattern("[%Y-%m-%d %H:%M:%S] %v");
  sinks.push_back(file);
  if (options_.console) {
    auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    err->set_pattern("[%H:%M:%S] %v");
    sinks.push_back(err);
  }
  logger_ = std::make_shared<spdlog::logger>("lowbit", sinks.begin(), sinks.end());
  logger_->flush_on(spdlog::level::info);
  if (fresh_) write_text_atomic((fs::path(run_dir_) / "config.yaml").string(), to_yaml(config_));
  metrics_ = std::make_unique<MetricsLog>(run_dir_, fresh_ ? -1 : state_.epoch);
  const bool tty = options_.progress_line.value_or(options_.console && Progress::stderr_is_tty());
  progress_ = std::make_unique<Progress>(tty, [this](const std::string& l) { log(l); });
}

void Trainer::log(const std::string& line) {
  if (progress_) progress_->end_epoch();
  logger_->info(line);
}

void Trainer::init_from_checkpoint(const std::string& path) {
  CheckpointContents ckpt = load_checkpoint(path);
  LoadReport report = model_->load_state_dict(ckpt.model, /*strict=*/false);
  std::vector<std::string> problems;
  for (const auto& n : report.unexpected) problems.push_back("unexpected '" + n + "'");
  for (const auto& m : report.shape_mismatch)
    problems.push_back("'" + m.name + "' has shape " + shape_str(m.got) + " in the file, the model wants " +
                       shape_str(m.expected));
  // Missing entries go to the module that owns them, which may derive them from what loaded.
  std::vector<std::string> underived;
  for (auto& [prefix, m] : model_->named_modules()) {
    const std::string pre = prefix.empty() ? "" : prefix + ".";
    std::vector<std::string> own;
    for (const auto& n : report.missing)
      if (n.compare(0, pre.size(), pre) == 0 && n.find('.', pre.size()) == std::string::npos)
        own.push_back(n.substr(pre.size()));
    if (own.empty()) continue;
    for (const auto& left : m->initialize_missing(own)) underived.push_back(pre + left);
  }
  for (const auto& n : underived) problems.push_back("missing '" + n + "'");
  LOWBIT_CHECK(problems.empty(), "model.init_from",
               "checkpoint ", path, " does not fit model '", config_.model.name, "': ", list(problems));
  init_report_ = detail::cat("loaded ", ckpt.model.size(), " tensors from ", path,
                             report.missing.empty() ? "" : detail::cat("; derived ", list(report.missing)));
}

void Trainer::restore(const CheckpointContents& ckpt) {
  model_->load_state_dict(ckpt.model, /*strict=*/true);
  optimizer_->load_state(ckpt.optimizer);
  for (auto& [name, m] : model_->named_modules()) {
    Generator* g = m->generator();
    if (!g) continue;
    auto it = ckpt.generators.find(name);
    LOWBIT_CHECK(it != ckpt.generators.end(), ckpt.path, "has no generator state for module '", name, "'");
    g->set_state(it->second[0], it->second[1], it->second[2]);
  }
  state_ = ckpt.state;
  LOWBIT_CHECK(state_.batch <= train_loader_->num_batches(), ckpt.path, "batch ", state_.batch,
               " is beyond the ", train_loader_->num_batches(), " batches of an epoch");
}

int64_t Trainer::total_steps() const { return int64_t(config_.train.epochs) * train_loader_->num_batches(); }

std::string Trainer::name_of(const Module& m) {
  for (auto& [name, mod] : model_->named_modules())
    if (mod == &m) return name;
  throw Error("module is not part of the model", "Trainer::name_of");
}

void Trainer::replace_parameter(const std::string& full_name, Tensor value) {
  model_->set_parameter(full_name, std::move(value));
  for (auto& [name, p] : model_->named_parameters())
    if (name == full_name) return optimizer_->replace_param(full_name, p);
  throw Error(detail::cat("no parameter '", full_name, "' after replacing it"), "Trainer::replace_parameter");
}

void Trainer::forward_training_batches(int64_t n, const std::string& purpose) {
  LoaderOptions lo = train_loader_->options();
  Generator g = run_gen_.split(purpose);
  lo.seed = g.next_u64();
  lo.prefetch = false;
  DataLoader loader(*data_.train, lo, data_.train_transforms);
  loader.begin_epoch(state_.epoch);
  NoGradGuard no_grad;
  Batch b;
  for (int64_t i = 0; i < n && loader.next(b); ++i) model_->forward(b.images);
}

void Trainer::recalibrate_batch_norm(int64_t batches) {
  std::vector<BatchNormBase*> bns;
  for (auto& [name, m] : model_->named_modules())
    if (auto* bn = dynamic_cast<BatchNormBase*>(m)) bns.push_back(bn);
  if (bns.empty() || batches <= 0) return;
  const bool was_training = model_->is_training();
  model_->eval();
  std::vector<std::optional<double>> momenta;
  for (BatchNormBase* bn : bns) {
    momenta.push_back(bn->momentum());
    bn->train(true);
    bn->set_momentum(std::nullopt);
    bn->reset_running_stats();
  }
  forward_training_batches(batches, "bn_recalibration");
  for (size_t i = 0; i < bns.size(); ++i) bns[i]->set_momentum(momenta[i]);
  model_->train(was_training);
}

void Trainer::calibrate() {
  int64_t n = 0;
  for (auto& [name, m] : model_->named_modules()) n = std::max(n, m->calibration_batches());
  if (n <= 0) return;
  // The pass runs in training mode; BatchNorm statistics it would move are put back.
  std::vector<std::pair<Tensor, Tensor>> saved;
  for (auto& [name, b] : model_->named_buffers()) saved.emplace_back(b, b.clone());
  model_->train();
  forward_training_batches(n, "calibration");
  for (auto& [live, copy] : saved) live.copy_(copy);
  for (auto& [name, m] : model_->named_modules()) m->end_calibration();
  log(detail::cat("calibration: ", n, " training batches"));
}

}  // namespace lowbit
