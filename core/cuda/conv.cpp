// CUDA conv2d on cuDNN: the descriptors of each geometry are made once and kept, and each
// direction's algorithm (forward, data gradient, weight gradient) is chosen once per geometry,
// math type and determinism setting, the first time that direction runs. Workspaces come from
// the device caching allocator. See runtime.h for set_deterministic and set_allow_tf32.
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "../kernels/conv.h"
#include "cudnn_util.h"
#include "runtime.h"

namespace lowbit::cuda {
namespace {

constexpr const char* kWhere = "cuda conv2d";

struct PlanKey {
  int device;
  int64_t n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  int math;
  bool deterministic;
  auto tie() const {
    return std::tie(device, n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups, math, deterministic);
  }
  bool operator<(const PlanKey& k) const { return tie() < k.tie(); }
};

// One direction's choice: the algorithm, its workspace, and a convolution descriptor carrying
// the math type cuDNN reported for it (cuDNN picks tensor-core kernels by algorithm + math type).
template <class Algo>
struct Choice {
  bool chosen = false;
  Algo algo{};
  size_t workspace = 0;
  ConvolutionDescriptor conv;
};

struct ConvPlan {
  TensorDescriptor x, y, bias;
  FilterDescriptor w;
  ConvolutionDescriptor conv;  // with the requested math type; used for the searches
  Choice<cudnnConvolutionFwdAlgo_t> fwd;
  Choice<cudnnConvolutionBwdDataAlgo_t> data;
  Choice<cudnnConvolutionBwdFilterAlgo_t> filter;
  std::mutex mu;  // guards the three choices
};

std::atomic<uint64_t> g_choices{0};

void set_conv(const ConvolutionDescriptor& d, const Conv2dGeometry& g, cudnnMathType_t math) {
  LOWBIT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
      d, cudnn_int(g.pad_h, "pad_h", kWhere), cudnn_int(g.pad_w, "pad_w", kWhere),
      cudnn_int(g.stride_h, "stride_h", kWhere), cudnn_int(g.stride_w, "stride_w", kWhere),
      cudnn_int(g.dil_h, "dilation_h", kWhere), cudnn_int(g.dil_w, "dilation_w", kWhere), CUDNN_CROSS_CORRELATION,
      CUDNN_DATA_FLOAT));
  LOWBIT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, cudnn_int(g.groups, "groups", kWhere)));
  LOWBIT_CUDNN_CHECK(cudnnSetConvolutionMathType(d, math));
}

std::unique_ptr<ConvPlan> make_plan(const Conv2dGeometry& g, cudnnMathType_t math) {
  auto p = std::make_unique<ConvPlan>();
  set_nchw(p->x, g.n, g.c, g.h, g.w, kWhere);
  set_nchw(p->y, g.n, g.o, g.oh, g.ow, kWhere);
  set_nchw(p->bias, 1, g.o, 1, 1, kWhere);
  LOWBIT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, cudnn_int(g.o, "O", kWhere),
                                                cudnn_int(g.c / g.groups, "C/groups", kWhere),
                                                cudnn_int(g.kh, "kh", kWhere), cudnn_int(g.kw, "kw", kWhere)));
  set_conv(p->conv, g, math);
  // The op computed the output size; cuDNN must agree, or every later call would be wrong.
  int dims[4] = {};
  LOWBIT_CUDNN_CHECK(
      cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &dims[0], &dims[1], &dims[2], &dims[3]));
  LOWBIT_CHECK(dims[0] == g.n && dims[1] == g.o && dims[2] == g.oh && dims[3] == g.ow, kWhere,
               "cuDNN computes output [", dims[0], ", ", dims[1], ", ", dims[2], ", ", dims[3], "] but the op expects [",
               g.n, ", ", g.o, ", ", g.oh, ", ", g.ow, "]");
  return p;
}

// The plan of geometry g on `device` under the current settings (made on first use, then kept;
// leaked on purpose like the handles: tensors freed after main may still reach cuDNN).
ConvPlan& plan_for(const Conv2dGeometry& g, int device) {
  const cudnnMathType_t math = conv_math_type();
  const PlanKey key{device,  g.n,     g.c,     g.h,     g.w,     g.o,      g.kh, g.kw, g.stride_h, g.stride_w,
                    g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.groups, static_cast<int>(math), deterministic()};
  static std::mutex mu;
  static auto* plans = new std::map<PlanKey, std::unique_ptr<ConvPlan>>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans->find(key);
  if (it == plans->end()) it = plans->emplace(key, make_plan(g, math)).first;
  return *it->second;
}

// The best usable entry of a cuDNN ranking (fastest first for Find, best guess first for
// Get_v7): succeeded, fits `limit`, deterministic when required, and no TF32 unless allowed.
template <class Perf>
const Perf* pick(const std::vector<Perf>& perf, int count, size_t limit) {
  const bool det = deterministic(), tf32 = allow_tf32();
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[static_cast<size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > limit) continue;
    if (det && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (!tf32 && p.mathType != CUDNN_FMA_MATH) continue;
    return &p;
  }
  return nullptr;
}

// The largest workspace among the heuristic's usable entries: what a timed search is given.
template <class Perf>
size_t search_workspace(const std::vector<Perf>& perf, int count, size_t limit) {
  size_t most = 0;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[static_cast<size_t>(i)];
    if (p.status == CUDNN_STATUS_SUCCESS && p.memory <= limit && p.memory > most) most = p.memory;
  }
  return most;
}

template <class Algo, class Perf>
void adopt(Choice<Algo>& c, const Perf* p, const Conv2dGeometry& g, const char* direction) {
  LOWBIT_CHECK(p != nullptr, kWhere, "cuDNN offers no usable ", direction, " algorithm for input [", g.n, ", ", g.c,
               ", ", g.h, ", ", g.w, "], weight [", g.o, ", ", g.c / g.groups, ", ", g.kh, ", ", g.kw, "], groups ",
               g.groups, (deterministic() ? " among its deterministic ones (cuda::set_deterministic(false) allows all)"
                                          : ""));
  c.algo = p->algo;
  c.workspace = p->memory;
  set_conv(c.conv, g, p->mathType);
}

// The workspace the chosen algorithm asks for itself (the ranking's figure may be an estimate);
// marks the choice made.
template <class Algo>
void settle(Choice<Algo>& c, size_t asked) {
  c.workspace = std::max(c.workspace, asked);
  c.chosen = true;
  ++g_choices;
}

// The steps of every direction, its cuDNN calls passed in: the heuristic ranking; when not
// deterministic, a timed search of the candidates on the call's own buffers (the outputs are
// overwritten right after by the real call); the pick; the workspace the pick asks for.
template <class Perf, class Algo, class Rank, class Find, class Size>
void choose(Choice<Algo>& c, const Conv2dGeometry& g, int dev, const char* direction, int max, Rank rank, Find find,
            Size asked) {
  std::vector<Perf> perf(static_cast<size_t>(max));
  int n = 0;
  rank(max, &n, perf.data());
  const size_t limit = workspace_limit(dev);
  if (!deterministic()) {
    const size_t bytes = search_workspace(perf, n, limit);
    Tensor ws = workspace(dev, bytes);
    find(max, &n, perf.data(), workspace_ptr(ws), bytes);
  }
  adopt(c, pick(perf, n, limit), g, direction);
  settle(c, asked(c));
}

void choose_forward(ConvPlan& p, const Conv2dGeometry& g, int dev, const void* x, const void* w, void* y) {
  cudnnHandle_t h = cudnn_handle(dev);
  int max = 0;
  LOWBIT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
  choose<cudnnConvolutionFwdAlgoPerf_t>(
      p.fwd, g, dev, "forward", max,
      [&](int m, int* n, cudnnConvolutionFwdAlgoPerf_t* perf) {
        LOWBIT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, m, n, perf));
      },
      [&](int m, int* n, cudnnConvolutionFwdAlgoPerf_t* perf, void* ws, size_t bytes) {
        LOWBIT_CUDNN_CHECK(
            cudnnFindConvolutionForwardAlgorithmEx(h, p.x, x, p.w, w, p.conv, p.y, y, m, n, perf, ws, bytes));
      },
      [&](const auto& c) {
        size_t bytes = 0;
        LOWBIT_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, c.conv, p.y, c.algo, &bytes));
        return bytes;
      });
}

void choose_data(ConvPlan& p, const Conv2dGeometry& g, int dev, const void* w, const void* dy, void* dx) {
  cudnnHandle_t h = cudnn_handle(dev);
  int max = 0;
  LOWBIT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
  choose<cudnnConvolutionBwdDataAlgoPerf_t>(
      p.data, g, dev, "data-gradient", max,
      [&](int m, int* n, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
        LOWBIT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.x, m, n, perf));
      },
      [&](int m, int* n, cudnnConvolutionBwdDataAlgoPerf_t* perf, void* ws, size_t bytes) {
        LOWBIT_CUDNN_CHECK(
            cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w, w, p.y, dy, p.conv, p.x, dx, m, n, perf, ws, bytes));
      },
      [&](const auto& c) {
        size_t bytes = 0;
        LOWBIT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, c.conv, p.x, c.algo, &bytes));
        return bytes;
      });
}

void choose_filter(ConvPlan& p, const Conv2dGeometry& g, int dev, const void* x, const void* dy, void* dw) {
  cudnnHandle_t h = cudnn_handle(dev);
  int max = 0;
  LOWBIT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
  choose<cudnnConvolutionBwdFilterAlgoPerf_t>(
      p.filter, g, dev, "weight-gradient", max,
      [&](int m, int* n, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
        LOWBIT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w, m, n, perf));
      },
      [&](int m, int* n, cudnnConvolutionBwdFilterAlgoPerf_t* perf, void* ws, size_t bytes) {
        LOWBIT_CUDNN_CHECK(
            cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p.x, x, p.y, dy, p.conv, p.w, dw, m, n, perf, ws, bytes));
      },
      [&](const auto& c) {
        size_t bytes = 0;
        LOWBIT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, c.conv, p.w, c.algo, &bytes));
        return bytes;
      });
}

int device_of(const Tensor& t) {
  LOWBIT_CHECK(t.device().is_cuda(), kWhere, "expects CUDA tensors, got one on ", t.device().str());
  return t.device().index;
}

}  // namespace

uint64_t conv_algorithm_choices() { return g_choices; }

// y = conv(x, w) + bias.
void conv2d_forward(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  if (y.numel() == 0) return;
  const int dev = device_of(y);
  DeviceGuard guard(dev);
  ConvPlan& p = plan_for(g, dev);
  cudnnHandle_t h = cudnn_handle(dev);
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (!p.fwd.chosen) choose_forward(p, g, dev, x.raw_data(), w.raw_data(), y.raw_data());
  }
  const float one = 1.0f, zero = 0.0f;
  Tensor ws = workspace(dev, p.fwd.workspace);
  LOWBIT_CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x, x.raw_data(), p.w, w.raw_data(), p.fwd.conv, p.fwd.algo,
                                             workspace_ptr(ws), p.fwd.workspace, &zero, p.y, y.raw_data()));
  if (bias.defined())
    LOWBIT_CUDNN_CHECK(cudnnAddTensor(h, &one, p.bias, bias.raw_data(), &one, p.y, y.raw_data()));
}

// dx = conv_transpose(dy, w), dw = correlation of x with dy, db = sum of dy over n, oh, ow.
void conv2d_backward(const Conv2dGeometry& g, const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx,
                     Tensor* dw, Tensor* db) {
  const int dev = device_of(dy);
  DeviceGuard guard(dev);
  if (dy.numel() == 0) {
    // No output pixels (an empty batch): the weight and bias gradients are zero sums.
    if (dw && dw->nbytes()) LOWBIT_CUDA_CHECK(cudaMemsetAsync(dw->raw_data(), 0, dw->nbytes(), stream(dev)));
    if (db && db->nbytes()) LOWBIT_CUDA_CHECK(cudaMemsetAsync(db->raw_data(), 0, db->nbytes(), stream(dev)));
    return;
  }
  ConvPlan& p = plan_for(g, dev);
  cudnnHandle_t h = cudnn_handle(dev);
  const float one = 1.0f, zero = 0.0f;
  if (dx) {
    {
      std::lock_guard<std::mutex> lock(p.mu);
      if (!p.data.chosen) choose_data(p, g, dev, w.raw_data(), dy.raw_data(), dx->raw_data());
    }
    Tensor ws = workspace(dev, p.data.workspace);
    LOWBIT_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p.w, w.raw_data(), p.y, dy.raw_data(), p.data.conv,
                                                    p.data.algo, workspace_ptr(ws), p.data.workspace, &zero, p.x,
                                                    dx->raw_data()));
  }
  if (dw) {
    {
      std::lock_guard<std::mutex> lock(p.mu);
      if (!p.filter.chosen) choose_filter(p, g, dev, x.raw_data(), dy.raw_data(), dw->raw_data());
    }
    Tensor ws = workspace(dev, p.filter.workspace);
    LOWBIT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p.x, x.raw_data(), p.y, dy.raw_data(), p.filter.conv,
                                                      p.filter.algo, workspace_ptr(ws), p.filter.workspace, &zero,
                                                      p.w, dw->raw_data()));
  }
  if (db) LOWBIT_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, p.y, dy.raw_data(), &zero, p.bias, db->raw_data()));
}

}  // namespace lowbit::cuda
