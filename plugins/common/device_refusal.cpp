#include "device_refusal.hpp"

#include "qforge/qf_plugin.hpp"

namespace qforge::plugins {

std::string device_text(DLDevice device) {
  std::string type;
  switch (device.device_type) {
    case kDLCUDA:
      type = "cuda";
      break;
    case kDLCUDAManaged:
      type = "cuda (managed)";
      break;
    case kDLROCM:
      type = "rocm";
      break;
    default:
      type = "device type " + std::to_string(static_cast<int>(device.device_type));
  }
  return type + ":" + std::to_string(device.device_id);
}

void refuse_device(const std::string& what, DLDevice device, const std::string& plugin,
                   bool cuda_build, const CpuOnlyBuild& cpu_only) {
  if (cuda_build) {
    throw sdk::Error(QF_CODE_FAILED_PRECONDITION, what + " cannot run on " + device_text(device),
                     "this " + plugin +
                         " plugin holds CUDA kernels, which serve only cuda devices (no "
                         "ROCm/HIP port yet)",
                     "run with --device cpu, or on an NVIDIA GPU");
  }
  throw sdk::Error(QF_CODE_FAILED_PRECONDITION,
                   what + " on " + device_text(device) + " is not available in this build",
                   "this " + plugin +
                       " plugin was compiled without nvcc (QFORGE_HAVE_CUDA was OFF), so it " +
                       cpu_only.holds,
                   cpu_only.fix);
}

}  // namespace qforge::plugins
