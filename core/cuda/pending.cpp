// Kernel families not yet written for CUDA: each throws a lowbit::Error naming the kernel,
// so a model that reaches one fails with a clear message instead of a missing symbol.
// Remove a family from this file when its .cu lands (docs/cuda.md keeps the list).
#include "../kernels/batch_norm.h"
#include "../kernels/conv.h"
#include "../kernels/dropout.h"
#include "../kernels/pool.h"
#include "../kernels/shape.h"

namespace lowbit::cuda {
namespace {

[[noreturn]] void pending(const char* kernel) {
  throw Error(detail::cat("the kernel ", kernel, " is not implemented on CUDA yet"), "cuda",
              "run this op on the CPU (tensor.to(Device::cpu())); see docs/cuda.md for what exists");
}

}  // namespace

// ---- batch norm (planned on cuDNN) ----
void batch_norm_stats(const Tensor&, double, double, Tensor&, Tensor&, Tensor&, Tensor&) {
  pending("batch_norm_stats");
}
void batch_norm_apply(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool, Tensor&) {
  pending("batch_norm_apply");
}
void batch_norm_backward(bool, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, Tensor&, Tensor&, Tensor&) {
  pending("batch_norm_backward");
}

// ---- convolution (planned on cuDNN) ----
void conv2d_forward(const Conv2dGeometry&, const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  pending("conv2d_forward");
}
void conv2d_backward(const Conv2dGeometry&, const Tensor&, const Tensor&, const Tensor&, Tensor*, Tensor*, Tensor*) {
  pending("conv2d_backward");
}

// ---- dropout ----
void dropout(const Tensor&, Tensor&, Tensor&, const Generator&, uint64_t, float, float) { pending("dropout"); }
void dropout_backward(const Tensor&, const Tensor&, float, Tensor&) { pending("dropout_backward"); }

// ---- pooling (planned on cuDNN) ----
void max_pool2d(const Pool2dGeometry&, const Tensor&, Tensor&, Tensor&) { pending("max_pool2d"); }
void max_pool2d_backward(const Pool2dGeometry&, const Tensor&, const Tensor&, Tensor&) {
  pending("max_pool2d_backward");
}
void avg_pool2d(const Pool2dGeometry&, bool, const Tensor&, Tensor&) { pending("avg_pool2d"); }
void avg_pool2d_backward(const Pool2dGeometry&, bool, const Tensor&, Tensor&) { pending("avg_pool2d_backward"); }
void adaptive_avg_pool2d(const Pool2dGeometry&, const Tensor&, Tensor&) { pending("adaptive_avg_pool2d"); }
void adaptive_avg_pool2d_backward(const Pool2dGeometry&, const Tensor&, Tensor&) {
  pending("adaptive_avg_pool2d_backward");
}

// ---- shape ops (expand and permute are in shape.cu) ----
void concat(const std::vector<Tensor>&, int64_t, Tensor&) { pending("concat"); }
void slice(const Tensor&, int64_t, int64_t, int64_t, Tensor&) { pending("slice"); }
void slice_backward(const Tensor&, int64_t, int64_t, int64_t, Tensor&) { pending("slice_backward"); }
void index_select(const char*, const Tensor&, int64_t, const Tensor&, Tensor&) { pending("index_select"); }
void index_add(const Tensor&, int64_t, const Tensor&, Tensor&) { pending("index_add"); }
void gather(const char*, const Tensor&, int64_t, const Tensor&, Tensor&) { pending("gather"); }
void scatter_add(const Tensor&, int64_t, const Tensor&, Tensor&) { pending("scatter_add"); }
void one_hot(const char*, const Tensor&, int64_t, Tensor&) { pending("one_hot"); }

}  // namespace lowbit::cuda
