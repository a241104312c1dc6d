// One dispatch point per op family, keyed on device: each op family defines a stub
// holding one kernel per device kind. The CUDA backend fills its slot beside the CPU
// one; ops never branch on the device themselves.
//
//   using AddFn = void(const Tensor&, const Tensor&, Tensor&);
//   LOWBIT_DISPATCH_STUB(AddFn, add_stub, cpu::add, LOWBIT_CUDA_KERNEL(cuda::add));
#pragma once

#include "device.h"
#include "error.h"

namespace lowbit {

template <class Fn>
struct DispatchStub {
  const char* name;
  Fn* kernels[kNumDeviceKinds];

  Fn* operator[](Device d) const {
    Fn* k = kernels[static_cast<int>(d.kind)];
    if (!k) throw Error("no kernel for device " + d.str(), name, "lowbit was built without this backend");
    return k;
  }
};

}  // namespace lowbit

#ifdef LOWBIT_WITH_CUDA
#define LOWBIT_CUDA_KERNEL(fn) &(fn)
#else
#define LOWBIT_CUDA_KERNEL(fn) nullptr
#endif

#define LOWBIT_DISPATCH_STUB(FnType, stub, cpu_fn, cuda_fn) \
  static const ::lowbit::DispatchStub<FnType> stub{#stub, {&(cpu_fn), (cuda_fn)}}
