// Quantizer benchmark: the LeNet-5 training step (batch 128, SGD) in float and under each
// quantizer, and the fused CPQ kernel alone per element and bit-width; one JSON line per case.
//   lowbit_bench_quant [--steps N] [--threads T] [--batch B] [--model NAME] [--kernel-only] [--only 'cpq 2/2']
//   [--repeat R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/ops/loss.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "layers/zoo.h"
#include "optim/sgd.h"
#include "quant/cpq_kernel.h"
#include "quant/quantize_model.h"

using namespace lowbit;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double step_ms(const std::string& model_name, const std::string& quant_yaml, int64_t batch, int steps) {
  Generator root(0);
  Generator init = root.split("init"), data = root.split("data");
  ModelOptions mo;
  ModulePtr model = build_model(model_name, mo, init);
  if (!quant_yaml.empty()) quantize_model(*model, quant_yaml);
  model->train();
  SgdOptions so;
  so.lr = 0.01;
  so.momentum = 0.9;
  SGD opt(model->named_parameters(), so);
  const Shape xs = model_name == "lenet5" || model_name == "mlp" ? Shape{batch, 1, 28, 28} : Shape{batch, 3, 32, 32};
  const Tensor x = Tensor::randn(xs, data);
  const Tensor y = Tensor::randint(0, 10, {batch}, data);
  std::vector<double> t;
  for (int s = 0; s < steps + 3; ++s) {
    auto t0 = Clock::now();
    opt.zero_grad();
    Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
    if (s >= 3) t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return median(t);
}

void kernel_case(int bits, int64_t n, bool masked, int reps) {
  Generator g(1);
  Tensor x = Tensor::randn({n}, g, 0, 0.5), dy = Tensor::randn({n}, g);
  Tensor y = Tensor::empty({n}), dx = Tensor::empty({n});
  const float alpha = 1.0f / static_cast<float>(1 << (bits - 1)), sigma = alpha / 3;
  std::vector<uint8_t> drop(static_cast<size_t>(1) << bits, 0), em(static_cast<size_t>(n));
  for (size_t k = 1; k < drop.size(); k += 2) drop[k] = 2;
  for (int64_t i = 0; i < n; ++i) em[i] = (i % 3 == 0) ? 2 : 0;
  CpqArgs a;
  a.range = grid_range(bits, true);
  a.alpha = &alpha;
  a.sigma = &sigma;
  if (masked) {
    a.mask.drop_bit = drop.data();
    a.mask.elem_mask = em.data();
  }
  double da = 0, ds = 0;
  CpqGradOut out;
  out.dx = dx.data<float>();
  out.dalpha = &da;
  out.dsigma = &ds;
  std::vector<double> tf, tb;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    cpq_forward(x.data<float>(), n, a, y.data<float>());
    auto t1 = Clock::now();
    cpq_backward(x.data<float>(), dy.data<float>(), n, a, out);
    auto t2 = Clock::now();
    tf.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n));
    tb.push_back(std::chrono::duration<double, std::nano>(t2 - t1).count() / static_cast<double>(n));
  }
  std::printf(
      "{\"case\": \"cpq_kernel\", \"bits\": %d, \"numel\": %lld, \"masked\": %s, \"threads\": %d, "
      "\"forward_ns_per_elem\": %.3f, \"backward_ns_per_elem\": %.3f}\n",
      bits, static_cast<long long>(n), masked ? "true" : "false", get_num_threads(), median(tf), median(tb));
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 20, threads = 2, repeat = 1;
  int64_t batch = 128;
  std::string model = "lenet5";
  bool kernel_only = false;
  std::string only;  // --only NAME: just the float step and that case
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--kernel-only")) kernel_only = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps"))
      steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch"))
      batch = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--model"))
      model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--only"))
      only = argv[i + 1];
    else if (!std::strcmp(argv[i], "--repeat"))
      repeat = std::max(1, std::atoi(argv[i + 1]));
  }
  set_num_threads(threads);
  for (int bits : {2, 4, 8})
    for (bool masked : {false, true})
      if (only.empty()) kernel_case(bits, 1 << 18, masked, kernel_only ? 40 : 10);
  if (kernel_only) return 0;
  // Each case: the best of `repeat` medians (the float step is re-measured before each case,
  // so a ratio compares runs taken close together on a machine shared with other work).
  auto best_of = [&](const std::string& yaml) {
    double t = 1e30;
    for (int r = 0; r < repeat; ++r) t = std::min(t, step_ms(model, yaml, batch, steps));
    return t;
  };
  double fp = best_of("");
  std::printf("{\"case\": \"step\", \"model\": \"%s\", \"method\": \"float\", \"median_ms\": %.3f, \"ratio\": 1.0}\n",
              model.c_str(), fp);
  struct Q {
    const char* name;
    std::string yaml;
  };
  const std::vector<Q> qs = {
      {"ste_uniform 2/2", "method: ste_uniform\nweight_bits: 2\nact_bits: 2\n"},
      {"lsq 2/2", "method: lsq\nweight_bits: 2\nact_bits: 2\n"},
      {"cpq 2/2", "method: cpq\nweight_bits: 2\nact_bits: 2\n"},
      {"cpq+dropbits 2/2", "method: cpq\nweight_bits: 2\nact_bits: 2\ndropbits: {enabled: true}\n"},
      {"cpq 4/4", "method: cpq\nweight_bits: 4\nact_bits: 4\n"},
      {"cpq 8/8", "method: cpq\nweight_bits: 8\nact_bits: 8\n"},
      {"cpq+learn_bits (max 8) /2", "method: cpq\nweight_bits: 2\nact_bits: 2\nlearn_bits: {enabled: true}\n"},
      {"rq st 2/2", "method: rq\nweight_bits: 2\nact_bits: 2\n"},
  };
  for (const Q& q : qs) {
    if (!only.empty() && only != q.name) continue;
    fp = std::min(fp, best_of(""));
    const double t = best_of(q.yaml);
    std::printf("{\"case\": \"step\", \"model\": \"%s\", \"method\": \"%s\", \"median_ms\": %.3f, \"ratio\": %.3f}\n",
                model.c_str(), q.name, t, t / fp);
    std::fflush(stdout);
  }
  return 0;
}
