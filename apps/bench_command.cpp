// `lowbit bench`: median training-step time per model, as JSON lines or a table.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../layers/zoo.h"
#include "../train/config.h"
#include "../train/device.h"
#include "../train/step_bench.h"
#include "commands.h"

namespace lowbit::cli {

namespace {

struct BenchArgs {
  std::string models = "lenet5";
  StepBenchOptions options;
  bool json = false;
  std::string quant, bits = "8/8";
  std::vector<std::string> quant_set;  // extra quant: keys, "dropbits.enabled=true"
};

// --quant cpq --bits 2/2 --quant-set dropbits.enabled=true -> "{method: cpq, weight_bits: 2,
// act_bits: 2, dropbits: {enabled: true}}" (quantize_model checks every key and value).
std::string quant_yaml(const BenchArgs& a) {
  if (a.quant.empty() || a.quant == "none") {
    LOWBIT_CHECK(a.quant_set.empty(), "bench --quant-set", "needs --quant METHOD");
    return "";
  }
  const size_t slash = a.bits.find('/');
  LOWBIT_CHECK(slash != std::string::npos && slash > 0 && slash + 1 < a.bits.size(), "bench --bits",
               "expected W/A, e.g. 2/2 or 4/32, got '", a.bits, "'");
  const std::string base = apply_assignments(
      "{}", {"method=" + a.quant, "weight_bits=" + a.bits.substr(0, slash), "act_bits=" + a.bits.substr(slash + 1)},
      "bench --quant/--bits");
  return apply_assignments(base, a.quant_set, "bench --quant-set");
}

std::vector<std::string> split_models(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Every name is checked before the first model runs, so a typo does not cost a long bench.
void check_models(const std::vector<std::string>& models, const std::string& list) {
  LOWBIT_CHECK(!models.empty(), "bench --model", "no model named in '", list, "'");
  const auto known = model_names();
  for (const auto& m : models) {
    bool found = false;
    for (const auto& k : known) found = found || k == m;
    if (found) continue;
    std::string valid;
    for (const auto& k : known) valid += (valid.empty() ? "" : ", ") + k;
    throw Error(detail::cat("unknown model '", m, "'; valid models: ", valid), "bench --model");
  }
}

void print_table_header() {
  std::printf("%-10s %6s %7s %10s %10s %10s %10s %9s %s\n", "model", "batch", "threads", "median_ms", "min_ms",
              "mean_ms", "samples/s", "peak_MiB", "gemm");
}

void print_table_row(const StepBenchResult& r) {
  std::printf("%-10s %6lld %7d %10.2f %10.2f %10.2f %10.0f %9.1f %s\n", r.model.c_str(),
              static_cast<long long>(r.batch), r.threads, r.median_ms, r.min_ms, r.mean_ms, r.samples_per_s,
              static_cast<double>(r.peak_bytes) / (1 << 20), r.gemm_backend.c_str());
}

void run_bench(const BenchArgs& a) {
  const auto models = split_models(a.models);
  check_models(models, a.models);
  (void)resolve_device(a.options.device, "bench --device");  // before the table header
  if (!a.json) print_table_header();
  const std::string quant = quant_yaml(a);
  for (const auto& m : models) {
    StepBenchOptions o = a.options;
    o.model = m;
    o.quant = quant;
    StepBenchResult r = bench_training_step(o);
    if (a.json)
      std::printf("%s\n", step_bench_json(r, o).c_str());
    else
      print_table_row(r);
    std::fflush(stdout);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Time training steps (zero_grad, forward, cross_entropy, backward, SGD step) on synthetic data");
  cmd->add_option("--model,--models", args->models, "Zoo model, or a comma-separated list (e.g. mlp,lenet5)")
      ->capture_default_str();
  cmd->add_option("--batch", args->options.batch, "Batch size")->capture_default_str();
  cmd->add_option("--steps", args->options.steps, "Timed steps (the median is reported)")->capture_default_str();
  cmd->add_option("--warmup", args->options.warmup, "Untimed steps before the timed ones")->capture_default_str();
  cmd->add_option("--threads", args->options.threads, "Worker threads")->capture_default_str();
  cmd->add_option("--device", args->options.device, "cpu, cuda or cuda:N (steps timed between device synchronisations)")
      ->capture_default_str();
  cmd->add_option("--seed", args->options.seed, "Seed for the weights and the synthetic batch")->capture_default_str();
  cmd->add_flag("--json", args->json, "One JSON line per model (the keys of shared/anchors/torch_bench.py)");
  cmd->add_option("--quant", args->quant, "Quantize with this method (ste_uniform, lsq, rq, cpq, ...); default: none");
  cmd->add_option("--bits", args->bits, "Weight/activation bits with --quant, e.g. 2/2 (32 = float)")
      ->capture_default_str();
  cmd->add_option("--quant-set", args->quant_set, "Another quant: key, e.g. dropbits.enabled=true (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace lowbit::cli
