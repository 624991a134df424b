// Device selection for the awq plugin (awq_cuda.hpp).
#include "cuda/device_common.cuh"

#ifndef QFORGE_AWQ_GPU_ARCHS
#define QFORGE_AWQ_GPU_ARCHS "unknown"
#endif

namespace qforge::plugins::awq::gpu {
namespace {

// Launching nothing: its attributes tell whether this library holds code for the device.
__global__ void probe_kernel() {}

}  // namespace

std::string set_device(int device_id) {
  return cuda_select_device(device_id, probe_kernel, "awq", QFORGE_AWQ_GPU_ARCHS);
}

}  // namespace qforge::plugins::awq::gpu
