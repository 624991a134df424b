// Device selection and the few host <-> device copies the plugin needs (bnb_cuda.hpp).
#include "cuda/device_common.cuh"

#ifndef QFORGE_BNB_GPU_ARCHS
#define QFORGE_BNB_GPU_ARCHS "unknown"
#endif

namespace qforge::plugins::bnb::gpu {
namespace {

// Launching nothing: it only tells whether this library holds code for the device.
__global__ void probe_kernel() {}

}  // namespace

std::string set_device(int device_id) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return gpu_error(e, "cudaGetDeviceCount");
  if (device_id < 0 || device_id >= count) {
    return std::string(QF_GPU_NAME) + " device " + std::to_string(device_id) +
           " does not exist (this machine has " + std::to_string(count) + ")";
  }
  std::string err = gpu_error(cudaSetDevice(device_id), "cudaSetDevice");
  if (!err.empty()) return err;
  // A GPU older than every architecture compiled in (e.g. a T4, 7.5, against the default
  // 80;89;90) has no kernel image: say so here rather than fail at the first launch.
  cudaFuncAttributes attributes;
  if (cudaFuncGetAttributes(&attributes, probe_kernel) != cudaSuccess) {
    (void)cudaGetLastError();  // a non-sticky error: clear it so later calls start clean
    const int cc = compute_capability();
    return std::string("this bnb plugin has no ") + QF_GPU_NAME + " kernels for device " +
           std::to_string(device_id) + " (compute capability " + std::to_string(cc / 10) + "." +
           std::to_string(cc % 10) + "); it was built for architectures " + QFORGE_BNB_GPU_ARCHS +
           ": rebuild with that architecture in CMAKE_CUDA_ARCHITECTURES";
  }
  return "";
}

int compute_capability() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    return 0;
  }
  return major * 10 + minor;
}

std::string copy_to_device(void* dst, const void* host_src, size_t bytes, void* stream) {
  if (bytes == 0) return "";
  // From pageable memory the call returns once the bytes are staged, so host_src may be freed
  // right after; no stream synchronisation is needed.
  return gpu_error(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, as_stream(stream)),
                   "cudaMemcpyAsync (host to device)");
}

std::string copy_to_host_sync(void* host_dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return "";
  std::string err =
      gpu_error(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)),
                "cudaMemcpyAsync (device to host)");
  if (!err.empty()) return err;
  return synchronize_sync(stream);
}

std::string synchronize_sync(void* stream) {
  return gpu_error(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

std::string fill_bytes(void* dst, int value, size_t bytes, void* stream) {
  return gpu_error(cudaMemsetAsync(dst, value, bytes, as_stream(stream)), "cudaMemsetAsync");
}

}  // namespace qforge::plugins::bnb::gpu
