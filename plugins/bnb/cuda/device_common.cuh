// Shared device helpers of the bnb kernels: dtype loads/stores, block scales, launch checks.
//
// Bit-exactness with the CPU path rests on three build facts (plugins/bnb/CMakeLists.txt):
// no --use_fast_math (IEEE division, denormals kept: the 1e-38 absmax clamp is a subnormal) and
// --fmad=false (the CPU is built with -ffp-contract=off, so a * b + c rounds twice on both).
#pragma once

#include <cstdint>
#include <string>

#include "cuda/bnb_cuda.hpp"
#include "cuda/hip_compat.hpp"

namespace qforge::plugins::bnb::gpu {

inline std::string gpu_error(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return "";
  return std::string(QF_GPU_NAME) + " " + call + " failed: " + cudaGetErrorString(e);
}

// Kernel launches report configuration errors only through cudaGetLastError.
inline std::string launch_error(const char* kernel) {
  return gpu_error(cudaGetLastError(), kernel);
}

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

__device__ __forceinline__ float load_float(const void* base, int64_t i, Float kind) {
  if (kind == Float::kF32) return static_cast<const float*>(base)[i];
  const uint16_t bits = static_cast<const uint16_t*>(base)[i];
  if (kind == Float::kF16) return __half2float(__ushort_as_half(bits));
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

// Round to nearest even, as the CPU's write_floats.
__device__ __forceinline__ void store_float(void* base, int64_t i, Float kind, float v) {
  if (kind == Float::kF32) {
    static_cast<float*>(base)[i] = v;
  } else if (kind == Float::kF16) {
    static_cast<uint16_t*>(base)[i] = __half_as_ushort(__float2half_rn(v));
  } else {
    const uint32_t u = __float_as_uint(v);
    uint16_t out;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      out = static_cast<uint16_t>((u >> 16) | 0x0040u);
    } else {
      out = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    static_cast<uint16_t*>(base)[i] = out;
  }
}

__device__ __forceinline__ float to_half_float(float v) { return __half2float(__float2half_rn(v)); }

__device__ __forceinline__ float block_absmax(const Absmax& a, int64_t block) {
  if (a.values != nullptr) return a.values[block];
  return a.nested_map[a.codes[block]] * a.nested[block / a.nested_blocksize] + a.offset;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grids are capped and kernels loop (grid-stride), so no launch exceeds the 2^31 - 1 limit.
inline unsigned grid_for(int64_t items, int64_t per_cta, int64_t cap = 65535) {
  const int64_t g = ceil_div(items, per_cta);
  return static_cast<unsigned>(g < 1 ? 1 : (g > cap ? cap : g));
}

}  // namespace qforge::plugins::bnb::gpu
