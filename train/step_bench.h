// Training-step benchmark: median time of zero_grad + forward + cross_entropy + backward + SGD step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

// The defaults are those of the PyTorch anchor (shared/anchors/torch_bench.py): batch 128,
// 3 warmup steps, median of 20, 2 threads, SGD lr 0.01 momentum 0.9, 10 classes.
struct StepBenchOptions {
  std::string model = "lenet5";  // a zoo name (build_model)
  int64_t batch = 128;
  int steps = 20;   // timed steps
  int warmup = 3;   // untimed steps before them
  int threads = 2;  // set_num_threads for the whole run
  uint64_t seed = 0;
  // The anchor's CIFAR ResNets use 1x1 conv + BN shortcuts (option B), not the zoo's default A.
  char resnet_shortcut = 'B';
  // Quantization as a `quant:` section in YAML flow style (empty: full precision), e.g.
  // "{method: cpq, weight_bits: 2, act_bits: 2}"; applied with quantize_model after the build.
  // Activation quantizers initialise from the first (warmup) batch.
  std::string quant;
  // cpu | cuda | cuda:N (resolve_device). On a GPU each step is timed between two
  // synchronisations of the device, as the anchor's torch.cuda.synchronize().
  std::string device = "cpu";
};

struct StepBenchResult {
  std::string model;
  int64_t batch = 0;
  int threads = 0;
  std::vector<int64_t> input_shape;  // one sample: [C, H, W]
  std::vector<double> times_ms;      // every timed step, in order
  double median_ms = 0, min_ms = 0, mean_ms = 0;
  double samples_per_s = 0;  // batch / median
  std::string device;        // where the steps ran, "cpu" or "cuda:N"
  int64_t peak_bytes = 0;    // the device allocator's high-water mark over the run, above what it held before
  // The high-water mark of everything lowbit held on the device (model, optimizer state, batch
  // included): what torch.cuda.max_memory_allocated() reports for the anchor.
  int64_t peak_total_bytes = 0;
  int64_t parameters = 0;    // trainable parameter count
  std::string gemm_backend;  // "openblas" or "eigen"
  double final_loss = 0;     // the last step's loss (a sanity check: finite, falling)
};

// The input shape of one sample for a zoo model as the anchor uses it: mlp and lenet5
// [1, 28, 28], every other model [3, 32, 32].
std::vector<int64_t> bench_input_shape(const std::string& model);

// Builds the model, a fixed random batch (x ~ N(0, 1), labels uniform in [0, 10)) and
// SGD(lr 0.01, momentum 0.9), then times warmup + steps training steps. An unknown model or
// a non-positive batch / steps / threads (warmup < 0) is an Error naming the value.
StepBenchResult bench_training_step(const StepBenchOptions& options);

// One JSON object on one line: the anchor's keys (model, batch, threads, device "cpu" or
// "cuda:N", median_ms, min_ms, rounded to 3 decimals) followed by lowbit's own (mean_ms,
// samples_per_s, peak_bytes, peak_total_bytes, parameters, gemm_backend, steps, warmup,
// final_loss, impl "lowbit").
std::string step_bench_json(const StepBenchResult& result, const StepBenchOptions& options);

}  // namespace lowbit
