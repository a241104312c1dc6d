// The CUDA backend's host-side API: device queries, the device allocator, streams, copies.
// Plain C++ (no CUDA headers), so tests and apps can use it; defined only with LOWBIT_CUDA.
#pragma once

#include "../allocator.h"
#include "../tensor.h"

namespace lowbit::cuda {

// Number of usable CUDA devices; 0 (never an exception) when there is no driver or no GPU.
int device_count() noexcept;
inline bool is_available() noexcept { return device_count() > 0; }

// Waits for all work queued on `device`'s stream (the current device when -1).
void synchronize(int device = -1);

// The caching allocator of CUDA device `device` (what allocator_for(Device::cuda(i)) returns).
// Blocks are reused in the order of the device's one stream, so freeing a block that a queued
// kernel still reads is safe: its next user is queued behind that kernel.
Allocator& device_allocator(int device);

// cuBLAS GEMMs run in full f32 by default; allow_tf32(true) lets them use TF32 tensor cores
// (about 10 bits of mantissa in the products), as torch.backends.cuda.matmul.allow_tf32 does.
void set_allow_tf32(bool on);
bool allow_tf32();
// Convolutions use only cuDNN algorithms that repeat bit for bit, chosen by cuDNN's heuristics
// (so every run picks the same ones); on by default. Off: the fastest algorithm found by
// timing each once per shape (cudnnFind), which may differ from run to run and use atomics.
// allow_tf32 also governs convolutions: CUDNN_DEFAULT_MATH (TF32 allowed) when on,
// CUDNN_FMA_MATH when off.
void set_deterministic(bool on);
bool deterministic();

// dst (already allocated, same shape and dtype) = src, across host and device in either
// direction or between devices. Synchronous with respect to the host.
void copy_across(const Tensor& src, Tensor& dst);

}  // namespace lowbit::cuda
