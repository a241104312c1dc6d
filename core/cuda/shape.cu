// CUDA shape kernels that are pure index maps: expand (broadcast copy) and permute, for any
// dtype, moved by element size. The other shape kernels are still in pending.cpp.
#include "../kernels/shape.h"
#include "common.cuh"

namespace lowbit::cuda {
namespace {

// out[i] = x[ix(i)]: one kernel per element size serves every dtype.
template <class T>
__global__ void index_map_kernel(const T* x, Indexer ix, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{blockDim.x} * gridDim.x)
    out[i] = x[ix(i)];
}

void index_map(const Tensor& x, const Indexer& ix, Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int dev = out.device().index;
  DeviceGuard g(dev);
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    index_map_kernel<T><<<blocks_for(n), kThreads, 0, stream(dev)>>>(static_cast<const T*>(x.raw_data()), ix,
                                                                      static_cast<T*>(out.raw_data()), n);
  };
  switch (dtype_size(x.dtype())) {
    case 1: launch(uint8_t{}); break;
    case 4: launch(uint32_t{}); break;
    default: launch(uint64_t{}); break;
  }
  LOWBIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void expand(const Tensor& x, Tensor& out) { index_map(x, make_indexer(out.shape(), x.shape()), out); }

// out's axis j walks x's axis perm[j].
void permute(const Tensor& x, const std::vector<int64_t>& perm, Tensor& out) {
  const Shape& os = out.shape();
  LOWBIT_CHECK(os.size() <= static_cast<size_t>(kMaxDims), "permute", "tensors of more than ", kMaxDims,
               " dimensions are not supported on CUDA, got ", shape_str(os));
  const Shape xs = contiguous_strides(x.shape());
  Indexer ix;
  ix.ndim = static_cast<int>(os.size());
  for (size_t j = 0; j < os.size(); ++j) {
    ix.dims[j] = os[j];
    ix.strides[j] = xs[static_cast<size_t>(perm[j])];
  }
  index_map(x, ix, out);
}

}  // namespace lowbit::cuda
