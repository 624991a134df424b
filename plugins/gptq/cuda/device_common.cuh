// Shared device helpers of the gptq kernels: dtype loads and stores, the weight value, the bit
// streams of qweight / qzeros, launch checks.
//
// Bit-exactness with gptq_tensor_io.cpp's float -> F16 / BF16 writes rests on both being IEEE
// round-to-nearest-even with overflow to Inf and gradual underflow (cvt.rn.f16.f32 /
// cvt.rn.bf16.f32; nvcc keeps subnormals without --use_fast_math); the weight itself is one
// float32 multiply, the same op on both sides.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda/gptq_cuda.hpp"

namespace qforge::plugins::gptq::gpu {

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

__device__ __forceinline__ float load_float(const void* base, int64_t i, Float kind) {
  if (kind == Float::kF32) return static_cast<const float*>(base)[i];
  const uint16_t bits = static_cast<const uint16_t*>(base)[i];
  if (kind == Float::kF16) return __half2float(__ushort_as_half(bits));
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

__device__ __forceinline__ void store_float(void* base, int64_t i, Float kind, float v) {
  if (kind == Float::kF32) {
    static_cast<float*>(base)[i] = v;
  } else if (kind == Float::kF16) {
    static_cast<uint16_t*>(base)[i] = __half_as_ushort(__float2half_rn(v));
  } else {
    static_cast<uint16_t*>(base)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

// Value k of a `bits`-bit LSB-first stream starting at `words` (3-bit values may straddle two
// words; 2/4/8-bit ones never do).
__device__ __forceinline__ uint32_t stream_value(const int32_t* words, int64_t stride, int bits,
                                                 int64_t k) {
  const int64_t bit = k * bits;
  const int64_t word = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  const uint32_t mask = (1u << bits) - 1u;
  uint32_t v = static_cast<uint32_t>(words[word * stride]) >> shift;
  if (shift + bits > 32) v |= static_cast<uint32_t>(words[(word + 1) * stride]) << (32 - shift);
  return v & mask;
}

// The true zero point of (group g, output o): v1 stores zero - 1 (so a stored maxq reads as
// 2^bits), v2 the zero.
__device__ __forceinline__ int32_t zero_of(const Packed& w, int64_t g, int64_t o) {
  const int64_t cols = w.out * w.bits / 32;
  const uint32_t s = stream_value(w.qzeros + g * cols, 1, w.bits, o);
  return static_cast<int32_t>(w.v2 ? s : s + 1u);
}

// cpu/kernels.hpp's weight: one float32 product.
__device__ __forceinline__ float weight_value(uint32_t code, int32_t zero, float scale) {
  return __fmul_rn(scale, static_cast<float>(static_cast<int32_t>(code) - zero));
}

}  // namespace qforge::plugins::gptq::gpu
