// CUDA helpers the in-tree CUDA plugins (awq, fp8, gptq, hqq) share: error text, launch checks,
// grid sizing, dtype loads and device selection. Header-only on purpose: each plugin compiles its
// own copy against its own static CUDA runtime, so nothing here crosses a plugin boundary. bnb
// keeps its own: its build also targets HIP and names the backend in every error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace qforge::plugins {

inline std::string gpu_error(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return "";
  return std::string("CUDA ") + call + " failed: " + cudaGetErrorString(e);
}

// Kernel launches report configuration errors only through cudaGetLastError.
inline std::string launch_error(const char* kernel) {
  return gpu_error(cudaGetLastError(), kernel);
}

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grids are capped and kernels loop (grid-stride), so no launch exceeds the grid limits.
inline unsigned grid_for(int64_t items, int64_t per_cta, int64_t cap = 65535) {
  const int64_t g = ceil_div(items, per_cta);
  return static_cast<unsigned>(g < 1 ? 1 : (g > cap ? cap : g));
}

// Element i of an F32 / F16 / BF16 buffer as float (exact: every such value is a float32).
// `Float` is the plugin's own dtype enum (kF32, kF16, kBF16).
template <typename Float>
__device__ __forceinline__ float load_float(const void* base, int64_t i, Float kind) {
  if (kind == Float::kF32) return static_cast<const float*>(base)[i];
  const uint16_t bits = static_cast<const uint16_t*>(base)[i];
  if (kind == Float::kF16) return __half2float(__ushort_as_half(bits));
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

// Stores v to element i of an F32 / F16 / BF16 buffer, rounding to nearest even (cvt.rn), as a
// CPU's IEEE float -> F16 / BF16 write does; NaN becomes the GPU's canonical NaN, so a plugin that
// must keep NaN payloads (fp8, hqq, bnb) has its own store.
template <typename Float>
__device__ __forceinline__ void store_float_rn(void* base, int64_t i, Float kind, float v) {
  if (kind == Float::kF32) {
    static_cast<float*>(base)[i] = v;
  } else if (kind == Float::kF16) {
    static_cast<uint16_t*>(base)[i] = __half_as_ushort(__float2half_rn(v));
  } else {
    static_cast<uint16_t*>(base)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

// The current device's compute capability as major * 10 + minor; 0 when it cannot be read.
inline int cuda_compute_capability() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    return 0;
  }
  return major * 10 + minor;
}

// Makes `device_id` current; "" on success, else why not. `probe` is an empty kernel of the
// calling plugin: its attributes fail to load when the plugin holds no code for this device, which
// is reported here, naming `archs` (the plugin's CMAKE_CUDA_ARCHITECTURES), rather than at the
// first launch.
template <typename Kernel>
std::string cuda_select_device(int device_id, Kernel* probe, const char* plugin,
                               const char* archs) {
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
  if (cudaFuncGetAttributes(&attributes, probe) != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky: clear it so later calls start clean
    const int cc = cuda_compute_capability();
    return std::string("this ") + plugin + " plugin has no CUDA kernels for device " +
           std::to_string(device_id) + " (compute capability " + std::to_string(cc / 10) + "." +
           std::to_string(cc % 10) + "); it was built for architectures " + archs +
           ": rebuild with that architecture in CMAKE_CUDA_ARCHITECTURES";
  }
  return "";
}

}  // namespace qforge::plugins
