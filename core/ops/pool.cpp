// Pooling ops: shape checks, forward through the device kernels, backward beside each.
#include "pool.h"

#include <algorithm>
#include <limits>
#include <string>

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/pool.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(MaxPool2dKernel, max_pool2d_stub, cpu::max_pool2d, LOWBIT_CUDA_KERNEL(cuda::max_pool2d));
LOWBIT_DISPATCH_STUB(MaxPool2dBackwardKernel, max_pool2d_backward_stub, cpu::max_pool2d_backward,
                     LOWBIT_CUDA_KERNEL(cuda::max_pool2d_backward));
LOWBIT_DISPATCH_STUB(AvgPool2dKernel, avg_pool2d_stub, cpu::avg_pool2d, LOWBIT_CUDA_KERNEL(cuda::avg_pool2d));
LOWBIT_DISPATCH_STUB(AvgPool2dBackwardKernel, avg_pool2d_backward_stub, cpu::avg_pool2d_backward,
                     LOWBIT_CUDA_KERNEL(cuda::avg_pool2d_backward));
LOWBIT_DISPATCH_STUB(AdaptiveAvgPool2dKernel, adaptive_avg_pool2d_stub, cpu::adaptive_avg_pool2d,
                     LOWBIT_CUDA_KERNEL(cuda::adaptive_avg_pool2d));
LOWBIT_DISPATCH_STUB(AdaptiveAvgPool2dBackwardKernel, adaptive_avg_pool2d_backward_stub,
                     cpu::adaptive_avg_pool2d_backward, LOWBIT_CUDA_KERNEL(cuda::adaptive_avg_pool2d_backward));

namespace {

std::string pair_str(const std::array<int64_t, 2>& v) {
  return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")";
}

// Checks x is f32 [N, C, H, W] or [C, H, W] and fills the plane count and input size.
Pool2dGeometry planes_of(const Tensor& x, const char* op) {
  LOWBIT_CHECK(x.dtype() == DType::f32, op, "needs an f32 tensor, got ", dtype_name(x.dtype()), " ",
               shape_str(x.shape()));
  LOWBIT_CHECK(x.dim() == 3 || x.dim() == 4, op, "expects a [N, C, H, W] or [C, H, W] input, got ",
               shape_str(x.shape()));
  Pool2dGeometry g;
  g.in_h = x.size(-2);
  g.in_w = x.size(-1);
  g.planes = x.numel() / std::max<int64_t>(g.in_h * g.in_w, 1);
  LOWBIT_CHECK(g.in_h > 0 && g.in_w > 0, op, "input ", shape_str(x.shape()), " has an empty plane");
  LOWBIT_CHECK(g.in_h * g.in_w <= std::numeric_limits<int32_t>::max(), op, "plane of input ", shape_str(x.shape()),
               " is too large for 32-bit indices");
  return g;
}

// torch's pooled length: floor (or ceil) of (in + 2p - d(k-1) - 1) / s, plus one, where a
// ceil-mode window must still start inside the input or its left padding.
int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  int64_t span = in + 2 * p - d * (k - 1) - 1;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

Pool2dGeometry window_geometry(const Tensor& x, const Pool2dOptions& opt, const char* op) {
  Pool2dGeometry g = planes_of(x, op);
  const auto& k = opt.kernel;
  const auto& d = opt.dilation;
  const auto& p = opt.padding;
  std::array<int64_t, 2> s{opt.stride[0] == 0 ? k[0] : opt.stride[0], opt.stride[1] == 0 ? k[1] : opt.stride[1]};
  LOWBIT_CHECK(k[0] > 0 && k[1] > 0, op, "kernel ", pair_str(k), " must be positive (input ", shape_str(x.shape()),
               ")");
  LOWBIT_CHECK(s[0] > 0 && s[1] > 0, op, "stride ", pair_str(opt.stride), " must be positive (0 means the kernel)");
  LOWBIT_CHECK(d[0] > 0 && d[1] > 0, op, "dilation ", pair_str(d), " must be positive");
  LOWBIT_CHECK(p[0] >= 0 && p[1] >= 0, op, "padding ", pair_str(p), " must be non-negative");
  LOWBIT_CHECK(2 * p[0] <= k[0] && 2 * p[1] <= k[1], op, "padding ", pair_str(p), " must be at most half the kernel ",
               pair_str(k));
  for (int a = 0; a < 2; ++a) {
    int64_t in = a == 0 ? g.in_h : g.in_w;
    LOWBIT_CHECK(d[a] * (k[a] - 1) + 1 <= in + 2 * p[a], op, "kernel ", pair_str(k), " (dilation ", pair_str(d),
                 ") is larger than the padded input: input ", shape_str(x.shape()), ", padding ", pair_str(p));
  }
  g.kernel_h = k[0], g.kernel_w = k[1];
  g.stride_h = s[0], g.stride_w = s[1];
  g.pad_h = p[0], g.pad_w = p[1];
  g.dilation_h = d[0], g.dilation_w = d[1];
  g.out_h = pooled_size(g.in_h, k[0], s[0], p[0], d[0], opt.ceil_mode);
  g.out_w = pooled_size(g.in_w, k[1], s[1], p[1], d[1], opt.ceil_mode);
  return g;
}

Shape pooled_shape(const Shape& xs, int64_t out_h, int64_t out_w) {
  Shape s = xs;
  s[s.size() - 2] = out_h;
  s[s.size() - 1] = out_w;
  return s;
}

}  // namespace

// y = max over each window, index = where it came from.  dx[index] += dy (only the index is saved).
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  const Pool2dGeometry g = window_geometry(x, opt, "max_pool2d");
  Tensor y = Tensor::empty(pooled_shape(x.shape(), g.out_h, g.out_w), DType::f32, x.device());
  Tensor index = Tensor::empty(y.shape(), DType::i32, x.device());
  max_pool2d_stub[x.device()](g, x, y, index);
  return record("max_pool2d", y, {x}, [g, index, xs = x.shape()](const Tensor& dy, Grads& grads) {
    Tensor dx = Tensor::empty(xs, DType::f32, dy.device());
    max_pool2d_backward_stub[dy.device()](g, dy, index, dx);
    grads.set(0, dx);
  });
}

// y = sum over each window / divisor.  dx += dy / divisor over each window.
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  LOWBIT_CHECK(opt.dilation[0] == 1 && opt.dilation[1] == 1, "avg_pool2d", "has no dilation, got ",
               pair_str(opt.dilation), " for input ", shape_str(x.shape()));
  const Pool2dGeometry g = window_geometry(x, opt, "avg_pool2d");
  const bool include_pad = opt.count_include_pad;
  Tensor y = Tensor::empty(pooled_shape(x.shape(), g.out_h, g.out_w), DType::f32, x.device());
  avg_pool2d_stub[x.device()](g, include_pad, x, y);
  return record("avg_pool2d", y, {x}, [g, include_pad, xs = x.shape()](const Tensor& dy, Grads& grads) {
    Tensor dx = Tensor::empty(xs, DType::f32, dy.device());
    avg_pool2d_backward_stub[dy.device()](g, include_pad, dy, dx);
    grads.set(0, dx);
  });
}

// y = mean over each adaptive bin.  dx += dy / bin size over each bin.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  Pool2dGeometry g = planes_of(x, "adaptive_avg_pool2d");
  LOWBIT_CHECK(out_h > 0 && out_w > 0, "adaptive_avg_pool2d", "output size (", out_h, ", ", out_w,
               ") must be positive (input ", shape_str(x.shape()), ")");
  g.out_h = out_h;
  g.out_w = out_w;
  Tensor y = Tensor::empty(pooled_shape(x.shape(), out_h, out_w), DType::f32, x.device());
  adaptive_avg_pool2d_stub[x.device()](g, x, y);
  return record("adaptive_avg_pool2d", y, {x}, [g, xs = x.shape()](const Tensor& dy, Grads& grads) {
    Tensor dx = Tensor::empty(xs, DType::f32, dy.device());
    adaptive_avg_pool2d_backward_stub[dy.device()](g, dy, dx);
    grads.set(0, dx);
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  LOWBIT_CHECK(x.dim() == 4, "global_avg_pool2d", "expects a [N, C, H, W] input, got ", shape_str(x.shape()));
  return adaptive_avg_pool2d(x, 1, 1);
}

}  // namespace lowbit
