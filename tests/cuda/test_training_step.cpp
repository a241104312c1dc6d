// Whole training steps on CPU and CUDA from the same weights and batches: LeNet-5 and ResNet-20
// losses agree to 1e-4 over 5 steps (deterministic mode); the loader's pinned uploads, Module::to,
// device checkpoints and a Trainer run on the GPU. All [gpu]: skipped where no GPU is present.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "core/allocator.h"
#include "core/cuda/runtime.h"
#include "core/ops/loss.h"
#include "core/rng.h"
#include "cuda/need_gpu.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "layers/zoo.h"
#include "optim/sgd.h"
#include "support/test_util.h"
#include "train/checkpoint.h"
#include "train/step_bench.h"
#include "train/trainer.h"

using namespace lowbit;

namespace {

struct StepRun {
  std::vector<double> losses;
  NamedTensors final_state;  // on the CPU
};

// `steps` SGD steps (lr 0.05, momentum 0.9, weight decay 1e-4) of zoo model `name` on `device`.
// Weights and batches are drawn on the host from fixed seeds, so both devices see the same ones.
StepRun run_steps(const std::string& name, Device device, int64_t batch, int steps) {
  cuda::set_deterministic(true);
  cuda::set_allow_tf32(false);
  Generator init(11), data(12);
  ModelOptions mo;
  mo.num_classes = 10;
  ModulePtr model = build_model(name, mo, init);
  model->train();
  model->to(device);
  SgdOptions so;
  so.lr = 0.05;
  so.momentum = 0.9;
  so.weight_decay = 1e-4;
  SGD opt(model->named_parameters(), so);
  Shape xs{batch};
  for (int64_t d : bench_input_shape(name)) xs.push_back(d);
  StepRun r;
  for (int s = 0; s < steps; ++s) {
    Tensor x = Tensor::randn(xs, data).to(device);
    Tensor y = Tensor::randint(0, 10, {batch}, data).to(device);
    opt.zero_grad();
    Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item());
  }
  for (auto& [n, t] : model->state_dict()) r.final_state.emplace_back(n, t.to(Device::cpu()));
  return r;
}

void require_same_losses(const std::string& name, int64_t batch) {
  const StepRun cpu = run_steps(name, Device::cpu(), batch, 5);
  const StepRun gpu = run_steps(name, Device::cuda(0), batch, 5);
  REQUIRE(cpu.losses.size() == gpu.losses.size());
  for (size_t s = 0; s < cpu.losses.size(); ++s) {
    INFO(name << " step " << s << ": cpu " << cpu.losses[s] << ", cuda " << gpu.losses[s]);
    REQUIRE(std::isfinite(gpu.losses[s]));
    REQUIRE(std::abs(cpu.losses[s] - gpu.losses[s]) <= 1e-4 * std::max(1.0, std::abs(cpu.losses[s])));
  }
  // The weights after 5 steps, looser (they move by lr * gradient, differences compound).
  double worst = 0;
  for (size_t i = 0; i < cpu.final_state.size(); ++i) {
    const auto a = cpu.final_state[i].second.to_vector<double>(), b = gpu.final_state[i].second.to_vector<double>();
    for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(a[k] - b[k]) / (1 + std::abs(a[k])));
  }
  INFO(name << ": largest relative weight difference after 5 steps " << worst);
  CHECK(worst <= 1e-3);
}

}  // namespace

TEST_CASE("training step: LeNet-5 loss equal on CPU and CUDA over 5 steps", "[cuda][gpu][train]") {
  LOWBIT_NEED_GPU();
  require_same_losses("lenet5", 16);
}

TEST_CASE("training step: ResNet-20 loss equal on CPU and CUDA over 5 steps", "[cuda][gpu][train]") {
  LOWBIT_NEED_GPU();
  require_same_losses("resnet20", 8);
}

TEST_CASE("Module::to moves parameters, buffers and gradients in place, and back", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  Generator g(3);
  ModelOptions mo;
  mo.batch_norm = true;
  ModulePtr m = build_model("lenet5", mo, g);
  // Gradients exist before the move and move with their parameters.
  Tensor x = Tensor::randn({2, 1, 28, 28}, g);
  cross_entropy(m->forward(x), Tensor::from_vector<int64_t>({1, 7}, {2})).backward();
  const NamedTensors params = m->named_parameters();
  std::vector<std::vector<float>> grads;
  for (const auto& [n, p] : params) grads.push_back(p.grad().to_vector<float>());
  const NamedTensors before = m->state_dict();
  std::vector<std::vector<float>> values;
  for (const auto& [n, t] : before) values.push_back(t.to_vector<float>());
  m->to(Device::cuda(0));
  REQUIRE(m->device() == Device::cuda(0));
  for (size_t i = 0; i < params.size(); ++i) {
    INFO(params[i].first);
    REQUIRE(params[i].second.grad().device() == Device::cuda(0));
    REQUIRE(params[i].second.grad().to_vector<float>() == grads[i]);
  }
  const NamedTensors moved = m->state_dict();
  for (size_t i = 0; i < before.size(); ++i) {
    INFO(before[i].first);
    REQUIRE(moved[i].second.is_same(before[i].second));  // the same handles, now on the GPU
    REQUIRE(moved[i].second.device() == Device::cuda(0));
    REQUIRE(moved[i].second.to_vector<float>() == values[i]);
  }
  m->to(Device::cpu());
  for (size_t i = 0; i < before.size(); ++i) REQUIRE(before[i].second.to_vector<float>() == values[i]);
  REQUIRE(m->device() == Device::cpu());
}

TEST_CASE("loader: CUDA batches equal the CPU ones, with and without prefetch", "[cuda][gpu][data]") {
  LOWBIT_NEED_GPU();
  SyntheticDataset ds(100, {3, 8, 8}, 10, 5);
  for (bool prefetch : {false, true}) {
    LoaderOptions lo;
    lo.batch_size = 16;
    lo.seed = 9;
    lo.prefetch = prefetch;
    DataLoader host(ds, lo);
    lo.device = Device::cuda(0);
    DataLoader dev(ds, lo);
    for (int64_t e = 0; e < 2; ++e) {
      host.begin_epoch(e);
      dev.begin_epoch(e);
      if (e == 1) {  // a restart in the middle of an epoch drops what was staged
        host.skip_to(3);
        dev.skip_to(3);
      }
      Batch a, b;
      int64_t n = 0;
      while (host.next(a)) {
        REQUIRE(dev.next(b));
        REQUIRE(b.images.device() == Device::cuda(0));
        REQUIRE(b.labels.device() == Device::cuda(0));
        REQUIRE(b.images.to_vector<float>() == a.images.to_vector<float>());
        REQUIRE(b.labels.to_vector<int64_t>() == a.labels.to_vector<int64_t>());
        REQUIRE(b.indices == a.indices);
        ++n;
      }
      REQUIRE_FALSE(dev.next(b));
      REQUIRE(n == (e == 0 ? 7 : 4));
    }
  }
}

TEST_CASE("trainer on CUDA: trains, checkpoints load on the CPU, resume moves devices", "[cuda][gpu][train]") {
  LOWBIT_NEED_GPU();
  test::TempDir tmp("cuda_trainer");
  const std::string yaml = R"(
model: {name: lenet5, batch_norm: true}
data: {dataset: synthetic, synthetic: {train_size: 256, test_size: 64}}
optim: {name: sgd, lr: 0.05}
train: {epochs: 2, batch_size: 32, seed: 3, device: cuda, bn_recalibration: 2}
)";
  TrainerOptions o;
  o.console = false;
  o.progress_line = false;
  o.handle_signals = false;
  o.run_dir = tmp.file("run");
  o.stop_after_steps = 11;  // stops in the second epoch
  {
    Trainer t(load_config_string(yaml, "cuda.yaml"), o);
    REQUIRE(t.device() == Device::cuda(0));
    RunSummary s = t.fit();
    REQUIRE(s.interrupted);
    REQUIRE(s.steps == 11);
  }
  // The file holds host tensors; the run continues on the CPU.
  CheckpointContents last = load_checkpoint(tmp.file("run/last.safetensors"));
  for (const auto& [n, t] : last.model) REQUIRE(t.device().is_cpu());
  REQUIRE(last.state.epoch_samples == 3 * 32);
  o.stop_after_steps = -1;
  auto resumed = Trainer::resume(tmp.file("run"), {"train.device=cpu"}, o);
  REQUIRE(resumed->device().is_cpu());
  RunSummary s = resumed->fit();
  REQUIRE_FALSE(s.interrupted);
  REQUIRE(s.steps == 16);
  REQUIRE(s.final_eval.samples == 64);
  REQUIRE(std::isfinite(s.final_eval.loss));
}

TEST_CASE("bench --device cuda: synchronised timings and device peak memory", "[cuda][gpu]") {
  LOWBIT_NEED_GPU();
  StepBenchOptions o;
  o.model = "lenet5";
  o.batch = 32;
  o.steps = 3;
  o.warmup = 1;
  o.device = "cuda";
  StepBenchResult r = bench_training_step(o);
  REQUIRE(r.device == "cuda:0");
  REQUIRE(r.times_ms.size() == 3);
  REQUIRE(r.median_ms > 0);
  REQUIRE(r.peak_bytes > 0);
  REQUIRE(r.peak_total_bytes >= r.peak_bytes);
  REQUIRE(std::isfinite(r.final_loss));
  REQUIRE_THAT(step_bench_json(r, o), Catch::Contains("\"device\":\"cuda:0\""));
}
