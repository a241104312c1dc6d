// conv2d: checks, forward through the device kernel, backward right beside it.
#include "conv.h"

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/conv.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(Conv2dForwardKernel, conv2d_forward_stub, cpu::conv2d_forward,
                     LOWBIT_CUDA_KERNEL(cuda::conv2d_forward));
LOWBIT_DISPATCH_STUB(Conv2dBackwardKernel, conv2d_backward_stub, cpu::conv2d_backward,
                     LOWBIT_CUDA_KERNEL(cuda::conv2d_backward));

namespace {

std::string pair_str(const std::array<int64_t, 2>& p) { return detail::cat("(", p[0], ", ", p[1], ")"); }

Conv2dGeometry resolve(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt) {
  const char* op = "conv2d";
  const std::string shapes = detail::cat("input ", shape_str(x.shape()), ", weight ", shape_str(w.shape()));
  LOWBIT_CHECK(x.dtype() == DType::f32 && w.dtype() == DType::f32, op, "needs f32 tensors, got input ",
               dtype_name(x.dtype()), " and weight ", dtype_name(w.dtype()), " (", shapes, ")");
  LOWBIT_CHECK(x.device() == w.device(), op, "input on ", x.device().str(), " and weight on ", w.device().str());
  LOWBIT_CHECK(x.dim() == 4, op, "input must be [N, C, H, W], got ", shape_str(x.shape()));
  LOWBIT_CHECK(w.dim() == 4, op, "weight must be [O, C/groups, kh, kw], got ", shape_str(w.shape()));
  LOWBIT_CHECK(opt.groups >= 1, op, "groups must be >= 1, got ", opt.groups);
  for (int i = 0; i < 2; ++i) {
    LOWBIT_CHECK(opt.stride[i] >= 1, op, "stride must be >= 1, got ", pair_str(opt.stride));
    LOWBIT_CHECK(opt.dilation[i] >= 1, op, "dilation must be >= 1, got ", pair_str(opt.dilation));
    LOWBIT_CHECK(opt.padding[i] >= 0, op, "padding must be >= 0, got ", pair_str(opt.padding));
  }
  Conv2dGeometry g{};
  g.n = x.shape()[0], g.c = x.shape()[1], g.h = x.shape()[2], g.w = x.shape()[3];
  g.o = w.shape()[0], g.kh = w.shape()[2], g.kw = w.shape()[3];
  g.stride_h = opt.stride[0], g.stride_w = opt.stride[1];
  g.pad_h = opt.padding[0], g.pad_w = opt.padding[1];
  g.dil_h = opt.dilation[0], g.dil_w = opt.dilation[1];
  g.groups = opt.groups;
  LOWBIT_CHECK(g.c % g.groups == 0, op, "groups = ", g.groups, " does not divide the ", g.c, " input channels (",
               shapes, ")");
  LOWBIT_CHECK(g.o % g.groups == 0, op, "groups = ", g.groups, " does not divide the ", g.o, " output channels (",
               shapes, ")");
  LOWBIT_CHECK(w.shape()[1] * g.groups == g.c, op, "weight expects ", w.shape()[1] * g.groups,
               " input channels (", w.shape()[1], " per group x ", g.groups, " groups) but the input has ", g.c,
               " (", shapes, ")");
  LOWBIT_CHECK(g.kh >= 1 && g.kw >= 1 && g.c >= 1 && g.o >= 1, op, "empty kernel or no channels (", shapes, ")");
  const int64_t span_h = g.dil_h * (g.kh - 1) + 1, span_w = g.dil_w * (g.kw - 1) + 1;
  LOWBIT_CHECK(span_h <= g.h + 2 * g.pad_h && span_w <= g.w + 2 * g.pad_w, op, "kernel ", g.kh, "x", g.kw,
               " (dilation ", pair_str(opt.dilation), ") is larger than the padded input ", g.h + 2 * g.pad_h, "x",
               g.w + 2 * g.pad_w, " (", shapes, ", padding ", pair_str(opt.padding), ")");
  g.oh = (g.h + 2 * g.pad_h - span_h) / g.stride_h + 1;
  g.ow = (g.w + 2 * g.pad_w - span_w) / g.stride_w + 1;
  if (b.defined()) {
    LOWBIT_CHECK(b.dtype() == DType::f32 && b.device() == x.device(), op, "bias must be f32 on ",
                 x.device().str());
    LOWBIT_CHECK(b.shape() == Shape{g.o}, op, "bias must be [", g.o, "], got ", shape_str(b.shape()), " (",
                 shapes, ")");
  }
  return g;
}

}  // namespace

// y = conv(x, w) + b.
//   dx = conv_transpose(dy, w) (the correlation of dy with w flipped in space, channels swapped),
//   dw[o, c, i, j] = sum over n, oh, ow of dy[n, o, oh, ow] * x_pad[n, c, s*oh + d*i, s*ow + d*j],
//   db[o] = sum over n, oh, ow of dy[n, o, oh, ow].
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt) {
  const Conv2dGeometry g = resolve(x, w, b, opt);
  Tensor y = Tensor::empty({g.n, g.o, g.oh, g.ow}, DType::f32, x.device());
  conv2d_forward_stub[x.device()](g, x, w, b, y);
  // Save only what backward reads: w for dx, x for dw.
  Tensor keep_x = needs_grad({w}) ? x : Tensor();
  Tensor keep_w = needs_grad({x}) ? w : Tensor();
  return record("conv2d", y, {x, w, b}, [g, keep_x, keep_w](const Tensor& dy, Grads& gr) {
    Tensor dx, dw, db;
    if (gr.wants(0)) dx = Tensor::empty({g.n, g.c, g.h, g.w}, DType::f32, dy.device());
    if (gr.wants(1)) dw = Tensor::empty({g.o, g.c / g.groups, g.kh, g.kw}, DType::f32, dy.device());
    if (gr.wants(2)) db = Tensor::empty({g.o}, DType::f32, dy.device());
    conv2d_backward_stub[dy.device()](g, dy, keep_x, keep_w, dx.defined() ? &dx : nullptr,
                                      dw.defined() ? &dw : nullptr, db.defined() ? &db : nullptr);
    if (dx.defined()) gr.set(0, dx);
    if (dw.defined()) gr.set(1, dw);
    if (db.defined()) gr.set(2, db);
  });
}

}  // namespace lowbit
