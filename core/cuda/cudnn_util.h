// cuDNN helpers of the CUDA backend: descriptors that destroy themselves, the math type that
// follows allow_tf32(), workspaces from the device caching allocator, 32-bit size checks.
#pragma once

#include <climits>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "common.cuh"

namespace lowbit::cuda {

// One cuDNN descriptor, created at construction and destroyed with the object (move-only).
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class CudnnDescriptor {
 public:
  CudnnDescriptor() { LOWBIT_CUDNN_CHECK(Create(&d_)); }
  ~CudnnDescriptor() {
    if (d_) (void)Destroy(d_);
  }
  CudnnDescriptor(CudnnDescriptor&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
  CudnnDescriptor& operator=(CudnnDescriptor&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;
  T get() const { return d_; }
  operator T() const { return d_; }

 private:
  T d_ = nullptr;
};

using TensorDescriptor =
    CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor =
    CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor = CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                                              cudnnDestroyConvolutionDescriptor>;

// `v` as a cuDNN int, or an error naming `what` and `where` (cuDNN's legacy API is 32-bit).
int cudnn_int(int64_t v, const char* what, const char* where);

// An f32 NCHW tensor descriptor (fully packed).
void set_nchw(const TensorDescriptor& d, int64_t n, int64_t c, int64_t h, int64_t w, const char* where);

// CUDNN_FMA_MATH (no tensor cores, so no TF32) unless allow_tf32(), then CUDNN_DEFAULT_MATH,
// which on Ampere and later lets f32 convolutions use TF32 (PyTorch's choice for both).
cudnnMathType_t conv_math_type();

// A scratch buffer of `bytes` bytes on `device` from its caching allocator (empty for 0),
// valid until the returned tensor goes: freeing it while queued work still uses it is safe
// (see device_allocator).
Tensor workspace(int device, size_t bytes);
inline void* workspace_ptr(Tensor& ws) { return ws.defined() ? ws.raw_data() : nullptr; }

// The most workspace an algorithm search may ask for on `device`: 1 GiB, or half of the
// memory the driver reports free when that is less.
size_t workspace_limit(int device);

// How many convolution algorithms have been chosen so far (one per geometry, direction and
// setting): lets tests check that a repeated shape is not searched again.
uint64_t conv_algorithm_choices();

}  // namespace lowbit::cuda
