// Device selection, the native kernel's availability, and the few host <-> device copies the
// plugin needs (fp8_cuda.hpp).
#include "cuda/device_common.cuh"

#ifndef QFORGE_FP8_GPU_ARCHS
#define QFORGE_FP8_GPU_ARCHS "unknown"
#endif

namespace qforge::plugins::fp8::gpu {

// Defined in linear_native.cu: its attributes tell which architecture its code was built for.
const void* native_kernel_symbol();

namespace {

// Launching nothing: its attributes tell whether this library holds code for the device.
__global__ void probe_kernel() {}

}  // namespace

std::string set_device(int device_id) {
  return cuda_select_device(device_id, probe_kernel, "fp8", QFORGE_FP8_GPU_ARCHS);
}

int compute_capability() { return cuda_compute_capability(); }

bool native_available() {
  if (compute_capability() < 89) return false;
  // ptxVersion is the virtual architecture the loaded code came from: below 89 the native
  // kernel's body was compiled out (__CUDA_ARCH__ < 890), whatever GPU runs it.
  cudaFuncAttributes attributes;
  if (cudaFuncGetAttributes(&attributes, native_kernel_symbol()) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.ptxVersion >= 89;
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
  return gpu_error(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

}  // namespace qforge::plugins::fp8::gpu
