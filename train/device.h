// Where a run computes: parsing `train.device` / `--device`, and checking the device exists.
#pragma once

#include <string>

#include "../core/device.h"

namespace lowbit {

// "cpu", "cuda" (= cuda:0) or "cuda:N"; anything else is an Error naming `where`.
Device parse_device(const std::string& spec, const std::string& where = "train.device");

// parse_device, then checks that the device can be used here: a CUDA device needs a build
// with LOWBIT_CUDA and a GPU of that index. The errors name `where` and what is missing, e.g.
// "train.device: cuda requested but no CUDA device is available (0 devices)".
Device resolve_device(const std::string& spec, const std::string& where = "train.device");

// Waits for the work queued on `device` (a no-op on the CPU), e.g. before reading a clock.
void synchronize_device(Device device);

// train.deterministic / train.allow_tf32 for the CUDA backend (cuda::set_deterministic and
// cuda::set_allow_tf32, process-wide); nothing to do on the CPU, which is always deterministic
// and never uses TF32.
void apply_device_settings(Device device, bool deterministic, bool allow_tf32);

}  // namespace lowbit
