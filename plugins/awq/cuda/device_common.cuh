// Device helpers of the awq kernels: the weight value, the GEMM nibble order, the GEMV group
// lookup. The ones every CUDA plugin uses (dtype loads and stores, launch checks) are in
// plugins/common/cuda/cuda_common.cuh.
//
// Bit-exactness with awq_tensor_io.cpp's float -> F16 / BF16 writes rests on both being IEEE
// round-to-nearest-even with overflow to Inf and gradual underflow (cvt.rn.f16.f32 /
// cvt.rn.bf16.f32; nvcc keeps subnormals without --use_fast_math); the weight itself is one
// float32 multiply, the same op on both sides.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda/awq_cuda.hpp"
#include "cuda/cuda_common.cuh"  // plugins/common

namespace qforge::plugins::awq::gpu {

// awq_pack.hpp's kAwqReverseOrder as shift amounts: column 8c + j of a GEMM word sits in slot
// [0, 4, 1, 5, 2, 6, 3, 7][j], i.e. bits 4 * slot. Packed into one constant so no table (and no
// local-memory array) is needed: the shift of column j is nibble j of this word, times 4.
constexpr uint32_t kReverseOrderNibbles = 0x73625140u;

__device__ __forceinline__ uint32_t gemm_nibble(uint32_t word, int j) {
  const uint32_t slot = (kReverseOrderNibbles >> (4 * j)) & 7u;
  return (word >> (4 * slot)) & 15u;
}

// The GEMV layout's scale and zero of (output o, group g): zeros_width words of zeros per output
// (group 8c + k in slot k of word c), scales padded to 8 * zeros_width per output.
__device__ __forceinline__ void gemv_group(const Packed& w, int64_t o, int64_t g, float& scale,
                                           uint32_t& zero) {
  scale = load_float(w.scales, o * w.zeros_width * 8 + g, w.scales_kind);
  const auto zw = static_cast<uint32_t>(w.qzeros[o * w.zeros_width + g / 8]);
  zero = (zw >> (4 * (g % 8))) & 15u;
}

// cpu/kernels.hpp's weight: one float32 product.
__device__ __forceinline__ float weight_value(uint32_t code, uint32_t zero, float scale) {
  return __fmul_rn(scale,
                   static_cast<float>(static_cast<int32_t>(code) - static_cast<int32_t>(zero)));
}

}  // namespace qforge::plugins::awq::gpu
