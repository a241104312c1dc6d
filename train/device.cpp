// parse_device / resolve_device / synchronize_device / apply_device_settings.
#include "device.h"

#include <algorithm>

#include "../core/error.h"
#ifdef LOWBIT_WITH_CUDA
#include "../core/cuda/runtime.h"
#endif

namespace lowbit {

Device parse_device(const std::string& spec, const std::string& where) {
  if (spec == "cpu") return Device::cpu();
  if (spec == "cuda") return Device::cuda(0);
  const std::string digits = spec.rfind("cuda:", 0) == 0 ? spec.substr(5) : "";
  const bool ok = !digits.empty() && digits.size() <= 4 &&
                  std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!ok) throw Error(detail::cat("unknown device '", spec, "'"), where, "allowed: cpu, cuda, cuda:N");
  return Device::cuda(std::stoi(digits));
}

Device resolve_device(const std::string& spec, const std::string& where) {
  const Device d = parse_device(spec, where);
  if (d.is_cpu()) return d;
#ifdef LOWBIT_WITH_CUDA
  const int n = cuda::device_count();
  LOWBIT_CHECK(n > 0, where, spec, " requested but no CUDA device is available (0 devices)");
  LOWBIT_CHECK(d.index < n, where, spec, " requested but this machine has ", n, " CUDA device", n == 1 ? "" : "s",
               " (cuda:0 to cuda:", n - 1, ")");
  return d;
#else
  throw Error(detail::cat(spec, " requested but lowbit was built without CUDA"), where,
              "rebuild with -DLOWBIT_CUDA=ON where nvcc is installed, or use cpu");
#endif
}

void synchronize_device(Device device) {
  if (device.is_cpu()) return;
#ifdef LOWBIT_WITH_CUDA
  cuda::synchronize(device.index);
#endif
}

void apply_device_settings(Device device, bool deterministic, bool allow_tf32) {
  if (device.is_cpu()) return;
#ifdef LOWBIT_WITH_CUDA
  cuda::set_deterministic(deterministic);
  cuda::set_allow_tf32(allow_tf32);
#else
  (void)deterministic;
  (void)allow_tf32;
#endif
}

}  // namespace lowbit
