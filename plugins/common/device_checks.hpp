// The checks a plugin with CUDA kernels (awq, fp8, gptq, hqq) makes before a device call, so each
// refuses a bad device, a failed CUDA call or a misplaced tensor in the same words. bnb keeps its
// own: it also serves ROCm and checks contiguity per tensor.
#pragma once

#include <dlpack/dlpack.h>

#include <string>

#include "device_refusal.hpp"
#include "qforge/qf_plugin.hpp"

namespace qforge::plugins {

// The device types a CUDA build's kernels run on.
constexpr bool cuda_serves(int device_type) {
  return device_type == kDLCUDA || device_type == kDLCUDAManaged;
}

// Refuses (refuse_device) a call this build's kernels cannot run: with CUDA kernels
// (`cuda_build`), one on a device other than a cuda one; without them, every device call.
// `cpu_only` defaults to the words of a plugin whose CPU path is its whole compute.
void require_cuda_served(const sdk::Call& call, const std::string& what, const std::string& plugin,
                         bool cuda_build,
                         const CpuOnlyBuild& cpu_only = {
                             "computes on the CPU only",
                             "run with --device cpu, or rebuild qforge with the CUDA toolkit "
                             "installed (-DQFORGE_CUDA=ON)"});

// Throws DEVICE_ERROR `what` with the CUDA error text `err`, when there is one.
void check_cuda(const std::string& err, const std::string& what);

// Throws FAILED_PRECONDITION when the plugin's set_device for `call` answered `err` (not empty).
void check_device_entered(const std::string& err, const sdk::Call& call,
                          const std::string& module_name);

// Throws INVALID_ARGUMENT unless `t` is a contiguous tensor with a buffer on the call's device;
// `what` names it ("linear_forward input x").
void require_on_cuda_device(const sdk::Call& call, const DLTensor& t, const std::string& what);

}  // namespace qforge::plugins
