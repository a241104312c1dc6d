// lowbit_bench_kernels: medians of sgemm and conv2d (forward, backward) timings as JSON lines.
//
//   lowbit_bench_kernels [--threads N] [--reps R] [--only sgemm|conv2d] [--batch B]
//
// One line per case: {"kernel": ..., "shape": [...], "threads": N, "gflops": ..., "median_ms": ...}.
// conv2d shapes are [N, C, H, W, O, kh, kw, stride] (padding 1), the 3x3 layers of ResNet-20 and
// VGG-7; conv2d_bwd computes both the data and the weight gradient (2x the forward FLOPs) with the
// backward kernel, conv2d_fwd_bwd is the forward op followed by it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "core/kernels/conv.h"
#include "core/kernels/gemm.h"
#include "core/ops/conv.h"
#include "core/ops/linalg.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/tensor.h"

using namespace lowbit;

namespace {

struct Args {
  int threads = 2;
  int reps = 10;
  int64_t batch = 128;
  std::string only;
  bool cpu_clock = false;  // time by process CPU time: steadier on a busy machine, meaningful for --threads 1
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--threads") a.threads = std::atoi(next());
    else if (k == "--reps") a.reps = std::max(1, std::atoi(next()));
    else if (k == "--batch") a.batch = std::max(1, std::atoi(next()));
    else if (k == "--only") a.only = next();
    else if (k == "--cpu-clock") a.cpu_clock = true;
    else {
      std::fprintf(stderr, "usage: lowbit_bench_kernels [--threads N] [--reps R] [--only sgemm|conv2d] [--batch B] [--cpu-clock]\n");
      std::exit(2);
    }
  }
  return a;
}

bool g_cpu_clock = false;

double now_ms() {
  if (g_cpu_clock) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
  }
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// Median wall time of fn over `reps` runs after one warm-up run.
double median_ms(const std::function<void()>& fn, int reps) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    double s = now_ms();
    fn();
    t.push_back(now_ms() - s);
  }
  std::sort(t.begin(), t.end());
  size_t n = t.size();
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

void emit(const char* kernel, const std::vector<int64_t>& shape, int threads, double flops, double ms,
          const char* net = nullptr) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  std::printf("{\"kernel\": \"%s\", \"shape\": [%s], \"threads\": %d, \"gflops\": %.1f, \"median_ms\": %.3f, "
              "\"impl\": \"lowbit-%s\"",
              kernel, s.c_str(), threads, flops / ms / 1e6, ms, cpu::gemm_backend_name());
  if (net) std::printf(", \"net\": \"%s\"", net);
  std::printf("}\n");
  std::fflush(stdout);
}

void bench_sgemm(const Args& a) {
  Generator gen(1);
  for (int64_t n : {256, 512, 1024, 2048}) {
    Tensor x = Tensor::randn({n, n}, gen), y = Tensor::randn({n, n}, gen), z = Tensor::empty({n, n});
    const float* px = x.data<float>();
    const float* py = y.data<float>();
    float* pz = z.data<float>();
    auto run = [&] { cpu::sgemm(false, false, n, n, n, 1.0f, px, n, py, n, 0.0f, pz, n); };
    // Enough repetitions for about half a second, so small sizes are not timer noise.
    double t0 = now_ms();
    run();
    const int reps = std::max(a.reps, static_cast<int>(500.0 / std::max(now_ms() - t0, 1e-3)));
    double ms = median_ms(run, std::min(reps, 2000));
    emit("sgemm", {n, n, n}, a.threads, 2.0 * n * n * n, ms);
  }
}

struct ConvCase {
  const char* net;
  int64_t c, o, hw, stride;
};

void bench_conv(const Args& a) {
  const ConvCase cases[] = {{"resnet20", 3, 16, 32, 1},  {"resnet20", 16, 16, 32, 1}, {"resnet20", 16, 32, 32, 2},
                            {"resnet20", 32, 32, 16, 1}, {"resnet20", 32, 64, 16, 2}, {"resnet20", 64, 64, 8, 1},
                            {"vgg7", 3, 128, 32, 1},     {"vgg7", 128, 128, 32, 1},   {"vgg7", 128, 256, 16, 1},
                            {"vgg7", 256, 256, 16, 1},   {"vgg7", 256, 512, 8, 1},    {"vgg7", 512, 512, 8, 1}};
  Generator gen(2);
  for (const ConvCase& cc : cases) {
    Conv2dOptions opt;
    opt.stride = {cc.stride, cc.stride};
    opt.padding = {1, 1};
    Tensor x = Tensor::randn({a.batch, cc.c, cc.hw, cc.hw}, gen);
    Tensor w = Tensor::randn({cc.o, cc.c, 3, 3}, gen, 0, 0.1);
    Tensor y = conv2d(x, w, Tensor(), opt);
    Tensor dy = Tensor::randn(y.shape(), gen);
    Tensor dx = Tensor::empty(x.shape()), dw = Tensor::empty(w.shape());
    // The kernels' view of the same call, for the backward (as torch.autograd.grad measures it:
    // no accumulation into leaf gradients).
    const Conv2dGeometry g{a.batch, cc.c, cc.hw, cc.hw, cc.o, 3, 3, y.size(2), y.size(3),
                           cc.stride, cc.stride, 1, 1, 1, 1, 1};
    const double flops = 2.0 * static_cast<double>(y.numel()) * cc.c * 9;
    const std::vector<int64_t> shape = {a.batch, cc.c, cc.hw, cc.hw, cc.o, 3, 3, cc.stride};
    double fwd = median_ms([&] { conv2d(x, w, Tensor(), opt); }, a.reps);
    emit("conv2d_fwd", shape, a.threads, flops, fwd, cc.net);
    double bwd = median_ms([&] { cpu::conv2d_backward(g, dy, x, w, &dx, &dw, nullptr); }, a.reps);
    emit("conv2d_bwd", shape, a.threads, 2 * flops, bwd, cc.net);
    double fb = median_ms(
        [&] {
          Tensor yy = conv2d(x, w, Tensor(), opt);
          cpu::conv2d_backward(g, dy, x, w, &dx, &dw, nullptr);
        },
        a.reps);
    emit("conv2d_fwd_bwd", shape, a.threads, 3 * flops, fb, cc.net);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  set_num_threads(a.threads);
  a.threads = get_num_threads();
  g_cpu_clock = a.cpu_clock;
  if (a.only.empty() || a.only == "sgemm") bench_sgemm(a);
  if (a.only.empty() || a.only == "conv2d") bench_conv(a);
  return 0;
}
