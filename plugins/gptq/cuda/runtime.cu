// Device selection for the gptq plugin (gptq_cuda.hpp).
#include "cuda/device_common.cuh"

#ifndef QFORGE_GPTQ_GPU_ARCHS
#define QFORGE_GPTQ_GPU_ARCHS "unknown"
#endif

namespace qforge::plugins::gptq::gpu {
namespace {

// Launching nothing: it only tells whether this library holds code for the device.
__global__ void probe_kernel() {}

int compute_capability() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    return 0;
  }
  return major * 10 + minor;
}

}  // namespace

std::string set_device(int device_id) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return gpu_error(e, "cudaGetDeviceCount");
  if (device_id < 0 || device_id >= count) {
    return "CUDA device " + std::to_string(device_id) + " does not exist (this machine has " +
           std::to_string(count) + ")";
  }
  std::string err = gpu_error(cudaSetDevice(device_id), "cudaSetDevice");
  if (!err.empty()) return err;
  cudaFuncAttributes attributes;
  if (cudaFuncGetAttributes(&attributes, probe_kernel) != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky: clear it so later calls start clean
    const int cc = compute_capability();
    return "this gptq plugin has no CUDA kernels for device " + std::to_string(device_id) +
           " (compute capability " + std::to_string(cc / 10) + "." + std::to_string(cc % 10) +
           "); it was built for architectures " + QFORGE_GPTQ_GPU_ARCHS +
           ": rebuild with that architecture in CMAKE_CUDA_ARCHITECTURES";
  }
  return "";
}

}  // namespace qforge::plugins::gptq::gpu
