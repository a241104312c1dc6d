// save_checkpoint / load_checkpoint: reserved names and metadata around a model's state_dict.
#include "checkpoint.h"

#include <charconv>
#include <cstring>

#include "../core/error.h"

namespace lowbit {
namespace {

const std::string kOptimPrefix = "@optim.";
const std::string kRngPrefix = "@rng.";

std::string num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back exactly
  return std::string(buf, r.ptr);
}

template <class T>
T parse(const CheckpointContents& c, const std::string& key, T fallback) {
  auto it = c.metadata.find(key);
  if (it == c.metadata.end()) return fallback;
  T v{};
  const std::string& s = it->second;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  LOWBIT_CHECK(r.ec == std::errc() && r.ptr == s.data() + s.size(), c.path, "metadata '", key, "' = '", s,
               "' is not a number");
  return v;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

void seed_module_generators(Module& model, const Generator& run) {
  Generator base = run.split("modules");
  for (auto& [name, m] : model.named_modules())
    if (Generator* g = m->generator()) *g = base.split(name.empty() ? std::string("<root>") : name);
}

void save_checkpoint(const std::string& path, Module& model, const Optimizer* optimizer, const TrainState& state,
                     const std::string& config_yaml, const std::map<std::string, std::string>& extra) {
  std::vector<std::pair<std::string, Tensor>> tensors = model.state_dict();
  std::map<std::string, std::string> meta = extra;
  meta["format"] = kCheckpointFormat;
  meta["format_version"] = std::to_string(kCheckpointVersion);
  meta["kind"] = optimizer ? "training" : "weights";
  meta["epoch"] = std::to_string(state.epoch);
  meta["batch"] = std::to_string(state.batch);
  meta["step"] = std::to_string(state.step);
  meta["best_top1"] = num(state.best_top1);
  meta["best_epoch"] = std::to_string(state.best_epoch);
  if (!config_yaml.empty()) meta["config"] = config_yaml;
  if (optimizer) {
    meta["optimizer"] = optimizer->kind();
    meta["epoch_loss_sum"] = num(state.epoch_loss_sum);
    meta["epoch_seconds"] = num(state.epoch_seconds);
    meta["epoch_correct"] = std::to_string(state.epoch_correct);
    meta["epoch_samples"] = std::to_string(state.epoch_samples);
    OptimizerState os = optimizer->state_dict();
    for (auto& [name, t] : os.tensors) tensors.emplace_back("@" + name, t);
    for (auto& [name, v] : os.scalars) meta[name] = num(v);
    for (auto& [name, m] : model.named_modules()) {
      const Generator* g = m->generator();
      if (!g) continue;
      Tensor t = Tensor::empty({3}, DType::i64);
      uint64_t s[3] = {g->seed(), g->stream(), g->offset()};
      std::memcpy(t.data<int64_t>(), s, sizeof s);
      tensors.emplace_back(kRngPrefix + name, t);
    }
  }
  // Files are device-independent: tensors on a GPU are copied to the host (no-op for the CPU).
  for (auto& [name, t] : tensors) t = t.to(Device::cpu());
  save_safetensors(path, tensors, meta);
}

CheckpointContents load_checkpoint(const std::string& path) {
  SafetensorsFile f = load_safetensors(path);
  CheckpointContents c;
  c.path = path;
  c.metadata = f.metadata;
  const bool ours = f.metadata.count("format") && f.metadata.at("format") == kCheckpointFormat;
  if (ours) {
    int version = parse<int>(c, "format_version", 0);
    LOWBIT_CHECK(version >= 1 && version <= kCheckpointVersion, path, "checkpoint format_version ", version,
                 " is not supported (this lowbit reads 1..", kCheckpointVersion, ")");
  }
  c.kind = ours && f.metadata.count("kind") ? f.metadata.at("kind") : "weights";
  LOWBIT_CHECK(c.kind == "training" || c.kind == "weights", path, "metadata 'kind' is '", c.kind,
               "', expected 'training' or 'weights'");
  for (auto& [name, t] : f.tensors) {
    if (starts_with(name, kRngPrefix)) {
      LOWBIT_CHECK(t.dtype() == DType::i64 && t.numel() == 3, path, "entry '", name,
                   "' must be an i64 tensor of 3 values (seed, stream, offset)");
      std::array<uint64_t, 3> s;
      std::memcpy(s.data(), t.data<int64_t>(), sizeof s);
      c.generators[name.substr(kRngPrefix.size())] = s;
    } else if (starts_with(name, kOptimPrefix)) {
      c.optimizer.tensors.emplace_back(name.substr(1), t);
    } else {
      c.model.emplace_back(name, t);
    }
  }
  for (auto& [key, value] : f.metadata)
    if (starts_with(key, "optim.")) c.optimizer.scalars.emplace_back(key, parse<double>(c, key, 0));
  if (f.metadata.count("config")) c.config_yaml = f.metadata.at("config");
  TrainState& s = c.state;
  s.epoch = parse<int64_t>(c, "epoch", 0);
  s.batch = parse<int64_t>(c, "batch", 0);
  s.step = parse<int64_t>(c, "step", 0);
  s.best_top1 = parse<double>(c, "best_top1", -1);
  s.best_epoch = parse<int64_t>(c, "best_epoch", -1);
  s.epoch_loss_sum = parse<double>(c, "epoch_loss_sum", 0);
  s.epoch_seconds = parse<double>(c, "epoch_seconds", 0);
  s.epoch_correct = parse<int64_t>(c, "epoch_correct", 0);
  s.epoch_samples = parse<int64_t>(c, "epoch_samples", 0);
  LOWBIT_CHECK(s.epoch >= 0 && s.batch >= 0 && s.step >= 0 && s.epoch_samples >= 0, path,
               "negative epoch/batch/step in the metadata");
  return c;
}

}  // namespace lowbit
