// Device helpers of the hqq kernels: the compute-dtype rounding of every dequantize op, stores
// (dtype loads and launch checks: plugins/common/cuda/cuda_common.cuh).
//
// Bit-exactness with hqq_tensor_io.cpp (round_as, write_floats) rests on two facts: the CPU's
// float -> F16 / BF16 conversions are IEEE round-to-nearest-even with overflow to Inf and
// gradual underflow, which is exactly what cvt.rn.f16.f32 / cvt.rn.bf16.f32 do for every
// non-NaN input (nvcc keeps subnormals without --use_fast_math / -ftz); and the build uses
// --fmad=false, as the CPU side uses -ffp-contract=off. Only NaN differs: a GPU op returns the
// canonical NaN, so the stores apply the CPU's NaN rule to the bits they are given.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda/cuda_common.cuh"  // plugins/common
#include "cuda/hqq_cuda.hpp"

namespace qforge::plugins::hqq::gpu {

// round_as: v rounded to kKind and widened back (identity for F32). The compute dtype is a
// template argument: a run-time switch per op inside the unrolled kernel loops made cicc take
// minutes per kernel.
template <Float kKind>
__device__ __forceinline__ float round_as(float v) {
  if constexpr (kKind == Float::kF16) {
    return __half2float(__float2half_rn(v));
  } else if constexpr (kKind == Float::kBF16) {
    return __bfloat162float(__float2bfloat16_rn(v));
  } else {
    return v;
  }
}

// hqq_tensor_io.cpp's float_to_half: NaN -> 0x7E00 with the sign, else round to nearest even.
__device__ __forceinline__ uint16_t half_bits(float f) {
  if (isnan(f)) return static_cast<uint16_t>(((__float_as_uint(f) >> 16) & 0x8000u) | 0x7E00u);
  return __half_as_ushort(__float2half_rn(f));
}

// hqq_tensor_io.cpp's float_to_bf16: a quiet NaN keeping the top bits, else nearest even.
__device__ __forceinline__ uint16_t bf16_bits(float f) {
  if (isnan(f)) return static_cast<uint16_t>((__float_as_uint(f) >> 16) | 0x40u);
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

__device__ __forceinline__ void store_float(void* base, int64_t i, Float kind, float v) {
  if (kind == Float::kF32) {
    static_cast<float*>(base)[i] = v;
  } else {
    static_cast<uint16_t*>(base)[i] = kind == Float::kF16 ? half_bits(v) : bf16_bits(v);
  }
}

// dense_weight's value of `code` in a group with multiplier s and zero z: (code - z) * s, each
// op rounded to the compute dtype kKind (PyTorch's elementwise ops in that dtype).
template <Float kKind>
__device__ __forceinline__ float dequant_value(uint32_t code, float z, float s) {
  return round_as<kKind>(round_as<kKind>(static_cast<float>(code) - z) * s);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace qforge::plugins::hqq::gpu
