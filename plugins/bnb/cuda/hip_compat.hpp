// The one place where CUDA and HIP differ for the bnb kernels: the .cu sources spell the CUDA
// runtime (cuda*, __half, __nv_bfloat16) and, when hipcc compiles them (__HIP_PLATFORM_AMD__ /
// __HIPCC__), these names map onto HIP's. Kernel code itself is shared; the only semantic
// difference is the warp width (64 on CDNA), which the kernels read from kWarp.
#pragma once

#if defined(__HIPCC__) || defined(__HIP_PLATFORM_AMD__)
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

using cudaError_t = hipError_t;
using cudaStream_t = hipStream_t;
#define cudaSuccess hipSuccess
#define cudaGetErrorString hipGetErrorString
#define cudaGetLastError hipGetLastError
#define cudaSetDevice hipSetDevice
#define cudaGetDevice hipGetDevice
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaDeviceGetAttribute hipDeviceGetAttribute
#define cudaDevAttrComputeCapabilityMajor hipDeviceAttributeComputeCapabilityMajor
#define cudaDevAttrComputeCapabilityMinor hipDeviceAttributeComputeCapabilityMinor
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaMemsetAsync hipMemsetAsync
#define cudaFuncAttributes hipFuncAttributes
#define cudaFuncGetAttributes(attr, fn) \
  hipFuncGetAttributes(attr, reinterpret_cast<const void*>(fn))
#define QF_GPU_WARP 64
#define QF_GPU_FULL_MASK 0xffffffffffffffffull
#define QF_GPU_NAME "HIP"
template <typename T>
__device__ __forceinline__ T qf_shfl_xor(T v, int lane_mask) {
  return __shfl_xor(v, lane_mask);
}
template <typename T>
__device__ __forceinline__ T qf_shfl(T v, int src_lane) {
  return __shfl(v, src_lane);
}
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define QF_GPU_WARP 32
#define QF_GPU_FULL_MASK 0xffffffffu
#define QF_GPU_NAME "CUDA"
template <typename T>
__device__ __forceinline__ T qf_shfl_xor(T v, int lane_mask) {
  return __shfl_xor_sync(QF_GPU_FULL_MASK, v, lane_mask);
}
template <typename T>
__device__ __forceinline__ T qf_shfl(T v, int src_lane) {
  return __shfl_sync(QF_GPU_FULL_MASK, v, src_lane);
}
#endif
