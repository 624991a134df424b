// Device selection and the host <-> device copies the hqq plugin needs (hqq_cuda.hpp).
#include "cuda/device_common.cuh"

#ifndef QFORGE_HQQ_GPU_ARCHS
#define QFORGE_HQQ_GPU_ARCHS "unknown"
#endif

namespace qforge::plugins::hqq::gpu {
namespace {

// Launching nothing: its attributes tell whether this library holds code for the device.
__global__ void probe_kernel() {}

}  // namespace

std::string set_device(int device_id) {
  return cuda_select_device(device_id, probe_kernel, "hqq", QFORGE_HQQ_GPU_ARCHS);
}

std::string copy_to_host_async(void* host_dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return "";
  return gpu_error(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)),
                   "cudaMemcpyAsync (device to host)");
}

std::string synchronize(void* stream) {
  return gpu_error(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

}  // namespace qforge::plugins::hqq::gpu
