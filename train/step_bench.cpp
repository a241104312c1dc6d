// Training-step benchmark: the loop of shared/anchors/torch_bench.py, timed step by step.
#include "step_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "../core/allocator.h"
#include "../core/error.h"
#include "../core/ops/linalg.h"
#include "../core/ops/loss.h"
#include "../core/parallel.h"
#include "../core/rng.h"
#include "../layers/zoo.h"
#include "../optim/sgd.h"
#include "../quant/quantize_model.h"
#include "device.h"

namespace lowbit {

namespace {

constexpr int64_t kClasses = 10;

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

// Restores the caller's thread count, whatever the bench throws.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int n) : prev_(get_num_threads()) { set_num_threads(n); }
  ~ThreadCountGuard() { set_num_threads(prev_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int prev_;
};

}  // namespace

std::vector<int64_t> bench_input_shape(const std::string& model) {
  if (model == "mlp" || model == "lenet5") return {1, 28, 28};
  return {3, 32, 32};
}

StepBenchResult bench_training_step(const StepBenchOptions& o) {
  const char* where = "bench";
  const auto names = model_names();
  if (std::find(names.begin(), names.end(), o.model) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw Error(detail::cat("unknown model '", o.model, "'; valid models: ", known), where);
  }
  LOWBIT_CHECK(o.batch >= 1, where, "batch must be >= 1, got ", o.batch);
  LOWBIT_CHECK(o.steps >= 1, where, "steps must be >= 1, got ", o.steps);
  LOWBIT_CHECK(o.warmup >= 0, where, "warmup must be >= 0, got ", o.warmup);
  LOWBIT_CHECK(o.threads >= 1, where, "threads must be >= 1, got ", o.threads);
  const Device device = resolve_device(o.device, "bench --device");
  if (!o.quant.empty()) parse_quant_config(o.quant);  // a bad section fails before anything is built
  ThreadCountGuard threads(o.threads);

  Generator root(o.seed);
  Generator init = root.split("init"), data = root.split("data");
  ModelOptions mo;
  mo.num_classes = kClasses;
  mo.shortcut = o.resnet_shortcut;
  ModulePtr model = build_model(o.model, mo, init);
  if (!o.quant.empty()) quantize_model(*model, o.quant);
  model->train();
  model->to(device);  // before the optimizer, which keeps its state beside the parameters
  SgdOptions so;
  so.lr = 0.01;
  so.momentum = 0.9;
  NamedTensors params = model->named_parameters();
  SGD opt(params, so);

  StepBenchResult r;
  r.model = o.model;
  r.batch = o.batch;
  r.threads = o.threads;
  r.device = device.str();
  r.input_shape = bench_input_shape(o.model);
  for (const auto& [name, p] : params) r.parameters += p.numel();
  Shape xs{o.batch};
  xs.insert(xs.end(), r.input_shape.begin(), r.input_shape.end());
  // Drawn on the host (the same values on every device), then copied once.
  const Tensor x = Tensor::randn(xs, data).to(device);
  const Tensor y = Tensor::randint(0, kClasses, {o.batch}, data).to(device);

  Allocator& alloc = allocator_for(device);
  synchronize_device(device);
  alloc.reset_peak();
  const size_t base_bytes = alloc.stats().allocated_bytes;
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    synchronize_device(device);  // the clock starts with the device idle and stops when it is again
    auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
    synchronize_device(device);
    auto t1 = std::chrono::steady_clock::now();
    if (s >= o.warmup) r.times_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (s == o.warmup + o.steps - 1) r.final_loss = loss.item();
  }
  // The high-water mark above what existed before the first step (model, batch, earlier runs).
  const AllocatorStats stats = alloc.stats();
  r.peak_bytes = static_cast<int64_t>(stats.peak_allocated_bytes - base_bytes);
  r.peak_total_bytes = static_cast<int64_t>(stats.peak_allocated_bytes);
  r.median_ms = median_of(r.times_ms);
  r.min_ms = *std::min_element(r.times_ms.begin(), r.times_ms.end());
  r.mean_ms = std::accumulate(r.times_ms.begin(), r.times_ms.end(), 0.0) / static_cast<double>(r.times_ms.size());
  r.samples_per_s = r.median_ms > 0 ? static_cast<double>(o.batch) * 1000.0 / r.median_ms : 0;
  r.gemm_backend = gemm_backend_name();
  return r;
}

std::string step_bench_json(const StepBenchResult& r, const StepBenchOptions& o) {
  // nlohmann::ordered_json keeps the anchor's key order, so the lines diff well against it.
  nlohmann::ordered_json j;
  j["model"] = r.model;
  j["batch"] = r.batch;
  j["threads"] = r.threads;
  j["device"] = r.device.empty() ? "cpu" : r.device;
  j["median_ms"] = round3(r.median_ms);
  j["min_ms"] = round3(r.min_ms);
  j["impl"] = "lowbit";
  j["mean_ms"] = round3(r.mean_ms);
  j["samples_per_s"] = std::round(r.samples_per_s * 10.0) / 10.0;
  j["peak_bytes"] = r.peak_bytes;
  j["peak_total_bytes"] = r.peak_total_bytes;
  j["parameters"] = r.parameters;
  j["gemm_backend"] = r.gemm_backend;
  j["steps"] = o.steps;
  j["warmup"] = o.warmup;
  j["final_loss"] =
      std::isfinite(r.final_loss) ? nlohmann::ordered_json(round3(r.final_loss)) : nlohmann::ordered_json(nullptr);
  j["quant"] = o.quant.empty() ? "none" : o.quant;
  return j.dump();
}

}  // namespace lowbit
