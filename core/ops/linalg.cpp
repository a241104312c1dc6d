// matmul and linear: forward on the GEMM kernels, backward as GEMMs with transposed operands.
#include "linalg.h"

#include "../autograd.h"
#include "../dispatch.h"
#include "../kernels/gemm.h"
#include "elementwise.h"
#include "reduce.h"
#include "shape_ops.h"

namespace lowbit {

LOWBIT_DISPATCH_STUB(SgemmKernel, sgemm_stub, cpu::sgemm, LOWBIT_CUDA_KERNEL(cuda::sgemm));
LOWBIT_DISPATCH_STUB(SgemmBatchedKernel, sgemm_batched_stub, cpu::sgemm_batched,
                     LOWBIT_CUDA_KERNEL(cuda::sgemm_batched));

const char* gemm_backend_name() { return cpu::gemm_backend_name(); }

namespace {

void check_f32_pair(const char* op, const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  LOWBIT_CHECK(a.dtype() == DType::f32 && b.dtype() == DType::f32, op, "needs f32 operands, got ", an, " ",
               dtype_name(a.dtype()), " ", shape_str(a.shape()), " and ", bn, " ", dtype_name(b.dtype()), " ",
               shape_str(b.shape()));
  LOWBIT_CHECK(a.device() == b.device(), op, an, " on ", a.device().str(), " and ", bn, " on ", b.device().str());
}

Shape concat_shape(Shape s, std::initializer_list<int64_t> tail) {
  s.insert(s.end(), tail);
  return s;
}

// How one operand of a batched matmul is fed to the batched GEMM.
struct BatchOperand {
  Tensor t;            // the operand, materialised to the full batch where it broadcasts partially
  int64_t stride = 0;  // elements between consecutive matrices; 0 when one matrix serves the batch
  bool expanded = false;
};

BatchOperand batch_operand(const Tensor& x, const Shape& batch, int64_t rows, int64_t cols) {
  Shape xb(x.shape().begin(), x.shape().end() - 2);
  const int64_t n = numel(xb);
  if (n == numel(batch)) return {x, rows * cols, false};  // same batch up to leading 1s
  if (n == 1) return {x, 0, false};
  NoGradGuard ng;
  return {expand(x.reshape(concat_shape(xb, {rows, cols})), concat_shape(batch, {rows, cols})), rows * cols, true};
}

}  // namespace

// y[i] = a[i] b[i] over the broadcast batch i.
//   da[i] = dy[i] b[i]^T, db[i] = a[i]^T dy[i], each summed over the batch entries its operand
//   was broadcast to. When b is one matrix, the batch folds into the rows of a single GEMM:
//   y = a_rows b, da_rows = dy_rows b^T, db = a_rows^T dy_rows.
Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_f32_pair("matmul", a_in, "a", b_in, "b");
  LOWBIT_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul", "needs operands of rank >= 1, got ",
               shape_str(a_in.shape()), " x ", shape_str(b_in.shape()));
  const bool a_vec = a_in.dim() == 1, b_vec = b_in.dim() == 1;
  const Tensor a = a_vec ? a_in.reshape({1, a_in.numel()}) : a_in;
  const Tensor b = b_vec ? b_in.reshape({b_in.numel(), 1}) : b_in;
  const int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1];
  const int64_t N = b.shape()[b.dim() - 1];
  LOWBIT_CHECK(b.shape()[b.dim() - 2] == K, "matmul", "inner dimensions differ: ", shape_str(a_in.shape()), " x ",
               shape_str(b_in.shape()));
  const Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch;
  try {
    batch = broadcast_shapes(ba, bb, "matmul");
  } catch (const Error&) {
    throw Error(detail::cat("batch dimensions do not broadcast: ", shape_str(a_in.shape()), " x ",
                            shape_str(b_in.shape())),
                "matmul");
  }
  const int64_t nb = numel(batch);
  Shape out_shape = concat_shape(batch, {M, N});
  Shape final_shape = out_shape;
  if (b_vec) final_shape.pop_back();                      // N
  if (a_vec) final_shape.erase(final_shape.begin() + static_cast<int64_t>(batch.size()));  // M

  const bool fold = numel(bb) == 1;  // b is one [K, N] matrix: batch folds into rows
  const Device dev = a.device();
  Tensor y = Tensor::empty(out_shape, DType::f32, dev);
  BatchOperand oa, ob;
  if (fold) {
    sgemm_stub[dev](false, false, nb * M, N, K, 1.0f, a.data<float>(), K, b.data<float>(), N, 0.0f,
                    y.data<float>(), N);
  } else {
    oa = batch_operand(a, batch, M, K);
    ob = batch_operand(b, batch, K, N);
    sgemm_batched_stub[dev](nb, false, false, M, N, K, 1.0f, oa.t.data<float>(), K, oa.stride, ob.t.data<float>(),
                            N, ob.stride, 0.0f, y.data<float>(), N, M * N);
  }
  y = y.reshape(final_shape);

  // Save only what backward reads: b for da, a for db.
  Tensor keep_a = needs_grad({b}) ? (fold ? a : oa.t) : Tensor();
  Tensor keep_b = needs_grad({a}) ? (fold ? b : ob.t) : Tensor();
  const Shape as = a.shape(), bs = b.shape(), as_in = a_in.shape(), bs_in = b_in.shape();
  return record("matmul", y, {a_in, b_in},
                [keep_a, keep_b, as, bs, as_in, bs_in, batch, nb, M, N, K, fold, dev, sa = oa.stride, sb = ob.stride,
                 ea = oa.expanded, eb = ob.expanded](const Tensor& dy_in, Grads& g) {
                  const float* dy = dy_in.data<float>();
                  if (g.wants(0)) {
                    Tensor da;
                    if (fold || sa != 0) {
                      // one da[i] per batch entry (folded: one GEMM over all rows)
                      da = Tensor::empty(fold ? as : concat_shape(batch, {M, K}), DType::f32, dev);
                      if (fold)
                        sgemm_stub[dev](false, true, nb * M, K, N, 1.0f, dy, N, keep_b.data<float>(), N, 0.0f,
                                        da.data<float>(), K);
                      else
                        sgemm_batched_stub[dev](nb, false, true, M, K, N, 1.0f, dy, N, M * N, keep_b.data<float>(),
                                                N, sb, 0.0f, da.data<float>(), K, M * K);
                      if (ea) da = sum_to(da, as);
                    } else {
                      // a is one matrix: accumulate dy[i] b[i]^T over the batch in order.
                      da = Tensor::empty({M, K}, DType::f32, dev);
                      for (int64_t i = 0; i < nb; ++i)
                        sgemm_stub[dev](false, true, M, K, N, 1.0f, dy + i * M * N, N,
                                        keep_b.data<float>() + i * sb, N, i ? 1.0f : 0.0f, da.data<float>(), K);
                    }
                    g.set(0, da.reshape(as_in));
                  }
                  if (g.wants(1)) {
                    Tensor db;
                    if (fold) {
                      db = Tensor::empty({K, N}, DType::f32, dev);
                      sgemm_stub[dev](true, false, K, N, nb * M, 1.0f, keep_a.data<float>(), K, dy, N, 0.0f,
                                      db.data<float>(), N);
                    } else {
                      db = Tensor::empty(concat_shape(batch, {K, N}), DType::f32, dev);
                      sgemm_batched_stub[dev](nb, true, false, K, N, M, 1.0f, keep_a.data<float>(), K, sa, dy, N,
                                              M * N, 0.0f, db.data<float>(), N, K * N);
                      if (eb) db = sum_to(db, bs);
                    }
                    g.set(1, db.reshape(bs_in));
                  }
                });
}

// y = x w^T + b over the rows of x ([rows, in] with rows = all leading dims).
//   dx = dy w, dw = dy^T x, db = sum of dy over the rows.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_f32_pair("linear", x, "input", w, "weight");
  LOWBIT_CHECK(w.dim() == 2, "linear", "weight must be [out, in], got ", shape_str(w.shape()));
  LOWBIT_CHECK(x.dim() >= 1 && x.shape().back() == w.shape()[1], "linear", "input ", shape_str(x.shape()),
               " does not end in the weight's in_features (weight ", shape_str(w.shape()), ")");
  const int64_t out = w.shape()[0], in = w.shape()[1];
  const int64_t rows = numel(Shape(x.shape().begin(), x.shape().end() - 1));
  if (b.defined()) {
    check_f32_pair("linear", x, "input", b, "bias");
    LOWBIT_CHECK(b.shape() == Shape{out}, "linear", "bias must be [", out, "] for weight ", shape_str(w.shape()),
                 ", got ", shape_str(b.shape()));
  }
  Shape ys = x.shape();
  ys.back() = out;
  const Device dev = x.device();
  Tensor y;
  if (b.defined()) {
    // C starts as the bias in every row; the GEMM then adds x w^T to it (beta = 1).
    NoGradGuard ng;
    Tensor row = b.reshape({1, out});
    y = (rows == 1 ? row.clone() : expand(row, {rows, out})).reshape(ys);
  } else {
    y = Tensor::empty(ys, DType::f32, dev);
  }
  sgemm_stub[dev](false, true, rows, out, in, 1.0f, x.data<float>(), in, w.data<float>(), in, b.defined() ? 1.0f : 0.0f,
                  y.data<float>(), out);

  Tensor keep_x = needs_grad({w}) ? x : Tensor();
  Tensor keep_w = needs_grad({x}) ? w : Tensor();
  return record("linear", y, {x, w, b},
                [keep_x, keep_w, xs = x.shape(), rows, in, out, dev](const Tensor& dy, Grads& g) {
                  if (g.wants(0)) {
                    Tensor dx = Tensor::empty(xs, DType::f32, dev);
                    sgemm_stub[dev](false, false, rows, in, out, 1.0f, dy.data<float>(), out, keep_w.data<float>(),
                                    in, 0.0f, dx.data<float>(), in);
                    g.set(0, dx);
                  }
                  if (g.wants(1)) {
                    Tensor dw = Tensor::empty({out, in}, DType::f32, dev);
                    sgemm_stub[dev](true, false, out, in, rows, 1.0f, dy.data<float>(), out, keep_x.data<float>(),
                                    in, 0.0f, dw.data<float>(), in);
                    g.set(1, dw);
                  }
                  if (g.wants(2)) g.set(2, sum(dy.reshape({rows, out}), {0}));
                });
}

}  // namespace lowbit
