// CUDA devices through the driver API, with libcuda loaded at run time (no link dependency and
// no CUDA headers: the few entry points are declared in cuda_probe.cpp).
#pragma once

#include "env/gpu_probe.hpp"

namespace qforge {

inline constexpr const char* kCudaDriverLibrary = "libcuda.so.1";

// Loads `libname` with dlopen(RTLD_NOW | RTLD_LOCAL) and lists its devices: name, compute
// capability, total memory and, when `query_free_memory`, free memory (this retains each
// device's primary context for a moment: cheap when the process already uses the device, a
// few hundred milliseconds otherwise). The library stays loaded. Never throws.
GpuBackendProbe probe_cuda(const char* libname, bool query_free_memory = true);

// "CUDA_ERROR_NO_DEVICE" for 100, for messages when the driver cannot name its own errors.
const char* cuda_error_fallback_name(int code);

}  // namespace qforge
