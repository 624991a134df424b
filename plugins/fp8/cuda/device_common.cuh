// Device helpers of the fp8 kernels: e4m3 conversion, stores (dtype loads and launch checks:
// plugins/common/cuda/cuda_common.cuh).
//
// Bit-exactness with the CPU path rests on doing the same integer operations (e4m3 encode,
// float16/bfloat16 stores are ports of cpu/e4m3.cpp and fp8_tensor_io.cpp, not CUDA intrinsics,
// whose saturation and NaN rules differ) and on two build facts (plugins/fp8/CMakeLists.txt):
// no --use_fast_math (IEEE division, subnormals kept) and --fmad=false (the CPU is built with
// -ffp-contract=off, so a * b + c rounds twice on both).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda/cuda_common.cuh"  // plugins/common
#include "cuda/fp8_cuda.hpp"

namespace qforge::plugins::fp8::gpu {

constexpr float kE4m3Max = 448.0f;

// m / 2^shift rounded to nearest, ties to even (shift >= 1), as cpu/e4m3.cpp.
__device__ __forceinline__ uint32_t round_shift_even(uint32_t m, uint32_t shift) {
  if (shift >= 32) return 0;
  const uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  return (rem > half || (rem == half && (q & 1u) != 0)) ? q + 1u : q;
}

// Saturating float32 -> e4m3fn, the integer algorithm of cpu::e4m3_from_float.
__device__ __forceinline__ uint8_t e4m3_from_float(float x) {
  const uint32_t b = __float_as_uint(x);
  const auto sign = static_cast<uint8_t>((b >> 24) & 0x80u);
  const uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7Fu;   // NaN keeps its sign
  if (a >= 0x43E00000u) return sign | 0x7Eu;  // >= 448 and Inf saturate
  const uint32_t exponent = a >> 23;
  if (exponent < 121) {
    if (exponent == 0) return sign;
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    return sign | static_cast<uint8_t>(round_shift_even(m, 141u - exponent));
  }
  return sign | static_cast<uint8_t>(round_shift_even(a, 20) - (120u << 3));
}

// Exact e4m3fn -> float32 (every code is a float32), NaN as copysign(NaN, sign) on the CPU.
__device__ __forceinline__ float e4m3_to_float(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
  const uint32_t e = (code >> 3) & 0xFu;
  const uint32_t m = code & 0x7u;
  if (e == 0xFu && m == 0x7u) return __uint_as_float(sign | 0x7FC00000u);
  if (e == 0) return __uint_as_float(sign | __float_as_uint(static_cast<float>(m) * 0.001953125f));
  return __uint_as_float(sign | ((e + 120u) << 23) | (m << 20));
}

// fp8_tensor_io.cpp's float_to_half: round to nearest even, Inf from 65520, NaN -> 0x7E00|sign.
__device__ __forceinline__ uint16_t half_bits(float f) {
  const uint32_t b = __float_as_uint(f);
  const auto sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00u;
  if (a >= 0x477FF000u) return sign | 0x7C00u;
  const uint32_t exponent = a >> 23;
  if (exponent < 113) {
    if (exponent < 102) return sign;
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    return sign | static_cast<uint16_t>(round_shift_even(m, 126u - exponent));
  }
  return sign | static_cast<uint16_t>(round_shift_even(a, 13) - (112u << 10));
}

// fp8_tensor_io.cpp's float_to_bf16: round to nearest even, quiet NaN.
__device__ __forceinline__ uint16_t bf16_bits(float f) {
  const uint32_t b = __float_as_uint(f);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((b >> 16) | 0x40u);
  return static_cast<uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ void store_float(void* base, int64_t i, Float kind, float v) {
  if (kind == Float::kF32) {
    static_cast<float*>(base)[i] = v;
  } else {
    static_cast<uint16_t*>(base)[i] = kind == Float::kF16 ? half_bits(v) : bf16_bits(v);
  }
}

// Max of non-negative float bit patterns (magnitudes, or the NaN flag 0x7FC00000, which
// compares above every finite magnitude and Inf as an unsigned integer; fmaxf would drop it).
__device__ __forceinline__ uint32_t warp_max_bits(uint32_t v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

constexpr uint32_t kNanFlag = 0x7FC00000u;

// The bits of |v|, or the NaN flag when v is NaN or Inf (a tile holding one is refused).
__device__ __forceinline__ uint32_t magnitude_bits(float v) {
  return isfinite(v) ? (__float_as_uint(v) & 0x7FFFFFFFu) : kNanFlag;
}

}  // namespace qforge::plugins::fp8::gpu
