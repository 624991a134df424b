// How an in-tree plugin names a device and refuses a call on one its build cannot serve, so
// the four plugins with GPU kernels (bnb, fp8, hqq, gptq) word it the same way.
#pragma once

#include <dlpack/dlpack.h>

#include <string>

namespace qforge::plugins {

// "cuda:0", "cuda (managed):1", "rocm:0", "device type 7:0".
std::string device_text(DLDevice device);

// What a plugin built without nvcc says about itself and the way out, e.g. {"computes on the
// CPU only", "run with --device cpu, or rebuild qforge with ..."}.
struct CpuOnlyBuild {
  std::string holds;
  std::string fix;
};

// Throws sdk::Error FAILED_PRECONDITION: `what` (e.g. "module 'x': hqq dequantize") cannot run
// on `device`. `cuda_build`: the plugin holds CUDA kernels (which serve only cuda devices);
// otherwise it was compiled without nvcc and `cpu_only` says what it holds and how to fix it.
[[noreturn]] void refuse_device(const std::string& what, DLDevice device, const std::string& plugin,
                                bool cuda_build, const CpuOnlyBuild& cpu_only);

}  // namespace qforge::plugins
