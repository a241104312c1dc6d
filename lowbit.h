// lowbit: the umbrella header of the public API.
#pragma once

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/ops/shape_ops.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/shape.h"
#include "core/tensor.h"
