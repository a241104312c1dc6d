// The guard of every [gpu] test body: without a CUDA device the body is not run. (cuda_main.cpp
// already exits with ctest's skip code then; the guard keeps a body safe when it is run by hand.)
#pragma once

#include <catch2/catch.hpp>

#include "core/cuda/runtime.h"

#define LOWBIT_NEED_GPU()                             \
  do {                                                \
    if (!::lowbit::cuda::is_available()) {            \
      WARN("no CUDA device: test body not executed"); \
      return;                                         \
    }                                                 \
  } while (0)
