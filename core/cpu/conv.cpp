// CPU conv2d: the forward paths and the kernel entry points. Forward and both gradients are
// GEMMs over per-image input layouts read in place (shifted copies for stride 1, channels-last
// copies otherwise; never im2col of the batch), images split across threads.
#include <algorithm>

#include "../kernels/conv.h"
#include "../parallel.h"
#include "conv_depthwise.h"
#include "conv_gemm.h"
#include "conv_layout.h"

namespace lowbit::cpu {
namespace conv_gemm {
namespace {

using conv_layout::ZLayout;
using conv_tiles::Tile;

// Runs the items (images x groups) of a forward: prepare(it, scratch), then compute(it,
// scratch, p0, p1) over its output pixels, then finish(it, scratch), with `scratch` floats of
// scratch per item in flight. With at least as many items as threads each thread takes whole
// items; with fewer (inference at batch 1) each item's pixels are split across the threads in
// ranges of whole tiles. Every output is computed the same way either way.
template <class Prepare, class Compute, class Finish>
void run_items(int64_t items, int64_t P, int64_t unit, int64_t scratch, Prepare prepare, Compute compute,
               Finish finish) {
  if (items >= get_num_threads() || P <= unit) {
    parallel_for(items, 1, [&](int64_t b, int64_t e) {
      Tensor buf = Tensor::empty({std::max<int64_t>(scratch, 1)});
      for (int64_t it = b; it < e; ++it) {
        prepare(it, buf.data<float>());
        compute(it, buf.data<float>(), int64_t(0), P);
        finish(it, buf.data<float>());
      }
    });
    return;
  }
  Tensor buf = Tensor::empty({std::max<int64_t>(scratch, 1)});
  const int64_t units = (P + unit - 1) / unit;
  for (int64_t it = 0; it < items; ++it) {
    prepare(it, buf.data<float>());
    parallel_for(units, 1, [&](int64_t b, int64_t e) { compute(it, buf.data<float>(), b * unit, std::min(P, e * unit)); });
    finish(it, buf.data<float>());
  }
}

}  // namespace

// Stride 1: y = W · B with B the shifted input copies (or the input itself for 1x1), the
// output rows written straight into NCHW. Also runs the stride-1 data gradient.
void forward_shifted(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t cg = g.c / g.groups, og = g.o / g.groups, K = cg * g.kh * g.kw, P = g.oh * g.ow;
  const ZLayout L = conv_layout::make_z_layout(g);
  const TileShape ts = pick_tile(og, P);
  const int64_t apanel = padded_rows(og, ts.mr) * K;
  Tensor ap = Tensor::empty({g.groups * apanel});
  float* a = ap.data<float>();
  for (int64_t grp = 0; grp < g.groups; ++grp) pack_a(w + grp * og * K, og, K, false, ts.mr, a + grp * apanel);
  auto input = [&](int64_t it) { return x + ((it / g.groups) * g.c + (it % g.groups) * cg) * g.h * g.w; };
  run_items(
      g.n * g.groups, P, ts.cols(), L.size,
      [&](int64_t it, float* z) {
        if (!L.direct) conv_layout::build_z(g, L, input(it), z);
      },
      [&](int64_t it, const float* z, int64_t p0, int64_t p1) {
        const int64_t img = it / g.groups, grp = it % g.groups;
        indirect_gemm(a + grp * apanel, og, K, ts, (L.direct ? input(it) : z) + p0, L.off.data(), p1 - p0,
                      y + (img * g.o + grp * og) * P + p0, P, bias ? bias + grp * og : nullptr);
      },
      [](int64_t, float*) {});
}

// Strided: y^T [p][o] = sum over tap segments of xt rows (in place, one per pixel) times the
// weight as [tap * cg + c][o], then transposed into NCHW.
void forward_channels_last(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t cg = g.c / g.groups, og = g.o / g.groups, K = cg * g.kh * g.kw, P = g.oh * g.ow;
  const int64_t wp = g.w + 2 * g.pad_w, hp = g.h + 2 * g.pad_h, xsize = hp * wp * cg;
  const Segments seg = segments(g);
  const TileShape ts = pick_tile(P, og);
  const TileFn fn = tile_fn(ts);
  const std::vector<float> wk = weight_tap_major(g, w, true);
  const std::vector<int64_t> poff = pixel_offsets(g), koff = strided_offsets(seg.len, og);
  // Scratch: the channels-last image, then y^T.
  run_items(
      g.n * g.groups, P, ts.mr, xsize + P * og,
      [&](int64_t it, float* buf) {
        const int64_t img = it / g.groups, grp = it % g.groups;
        conv_layout::channels_last_padded(g, x + (img * g.c + grp * cg) * g.h * g.w, buf);
      },
      [&](int64_t it, float* buf, int64_t pb, int64_t pe) {
        const int64_t grp = it % g.groups;
        Tile t;
        t.off = koff.data();
        t.ldc = og;
        t.K = seg.len;
        for (int64_t p0 = pb; p0 < pe; p0 += ts.mr) {
          t.arow = poff.data() + p0;
          t.mv = narrow(std::min<int64_t>(ts.mr, pe - p0));
          for (int64_t o0 = 0; o0 < og; o0 += ts.cols()) {
            t.n = narrow(std::min(ts.cols(), og - o0));
            t.c = buf + xsize + p0 * og + o0;
            for (int64_t s = 0; s < seg.count; ++s) {
              t.a = buf + seg.base(g, s, wp, cg);
              t.z = wk.data() + grp * og * K + seg.first_tap(g, s) * cg * og + o0;
              t.accumulate = s > 0;
              fn(t);
            }
          }
        }
      },
      [&](int64_t it, float* buf) {
        const int64_t img = it / g.groups, grp = it % g.groups;
        float* yo = y + (img * g.o + grp * og) * P;
        conv_layout::transpose(buf + xsize, og, P, og, yo, P);
        if (bias)
          for (int64_t o = 0; o < og; ++o) {
            const float bo = bias[grp * og + o];
            for (int64_t p = 0; p < P; ++p) yo[o * P + p] += bo;
          }
      });
}

}  // namespace conv_gemm

namespace {
bool unit_stride(const Conv2dGeometry& g) { return g.stride_h == 1 && g.stride_w == 1; }
}  // namespace

using namespace conv_gemm;

void conv2d_forward(const Conv2dGeometry& g, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  const float* b = bias.defined() ? bias.data<float>() : nullptr;
  if (conv_depthwise::applies(g)) conv_depthwise::forward(g, x.data<float>(), w.data<float>(), b, y.data<float>());
  else if (unit_stride(g)) forward_shifted(g, x.data<float>(), w.data<float>(), b, y.data<float>());
  else forward_channels_last(g, x.data<float>(), w.data<float>(), b, y.data<float>());
}

void conv2d_backward(const Conv2dGeometry& g, const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx,
                     Tensor* dw, Tensor* db) {
  const float* pdy = dy.data<float>();
  if (conv_depthwise::applies(g)) {
    conv_depthwise::backward(g, pdy, dw ? x.data<float>() : nullptr, dx ? w.data<float>() : nullptr,
                             dx ? dx->data<float>() : nullptr, dw ? dw->data<float>() : nullptr);
    if (db) bias_grad(g, pdy, db->data<float>());
    return;
  }
  if (dx) {
    const bool direct = unit_stride(g) && g.dil_h == 1 && g.c / g.groups <= 2;
    const bool as_conv = unit_stride(g) && g.pad_h <= g.dil_h * (g.kh - 1) && g.pad_w <= g.dil_w * (g.kw - 1);
    if (direct) data_grad_direct(g, pdy, w.data<float>(), dx->data<float>());
    else if (as_conv) data_grad_as_conv(g, pdy, w.data<float>(), dx->data<float>());
    else data_grad_channels_last(g, pdy, w.data<float>(), dx->data<float>());
  }
  if (dw) {
    if (segments(g).len < 16) weight_grad_dots(g, pdy, x.data<float>(), dw->data<float>());
    else weight_grad(g, pdy, x.data<float>(), dw->data<float>());
  }
  if (db) bias_grad(g, pdy, db->data<float>());
}

}  // namespace lowbit::cpu
