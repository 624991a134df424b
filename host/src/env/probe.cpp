// probe_environment: the whole machine, once. Each part reports its own failures as facts.
#include <exception>

#include "env/cpu_probe.hpp"
#include "env/cuda_probe.hpp"
#include "env/hip_probe.hpp"
#include "qforge/environment.hpp"
#include "qforge/logging.hpp"

#ifndef QFORGE_VERSION_STRING
#define QFORGE_VERSION_STRING "unknown"
#endif

namespace qforge {

Environment probe_environment() {
  Environment env;
  env.host_version = QFORGE_VERSION_STRING;
  // Only allocation failure can throw below; a probe must still never take the host down.
  try {
    probe_cpu(env);

    GpuBackendProbe cuda = probe_cuda(kCudaDriverLibrary);
    env.cuda_driver_found = cuda.found;
    env.cuda_driver_version = cuda.version;
    env.cuda_status = std::move(cuda.status);
    for (auto& d : cuda.devices) env.devices.push_back(std::move(d));

    GpuBackendProbe hip = probe_hip(kHipRuntimeLibraries);
    env.hip_runtime_found = hip.found;
    env.hip_runtime_version = hip.version;
    env.hip_status = std::move(hip.status);
    for (auto& d : hip.devices) env.devices.push_back(std::move(d));
  } catch (const std::exception& e) {
    get_logger("host.env")->warn("environment probe stopped early: {}", e.what());
  }
  // Debian's LibTorch is CPU-only; a CUDA LibTorch build defines QFORGE_TORCH_CUDA.
#ifdef QFORGE_TORCH_CUDA
  env.torch_cuda = true;
#endif
  get_logger("host.env")
      ->debug("environment: {} ({} logical CPUs), CUDA: {}, ROCm: {}", env.cpu_arch,
              env.logical_cpus, env.cuda_status, env.hip_status);
  return env;
}

}  // namespace qforge
