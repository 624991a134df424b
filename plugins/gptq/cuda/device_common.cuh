// Device helpers of the gptq kernels: the weight value, the bit streams of qweight / qzeros.
// The ones every CUDA plugin uses (dtype loads and stores, launch checks) are in
// plugins/common/cuda/cuda_common.cuh.
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

#include "cuda/cuda_common.cuh"  // plugins/common
#include "cuda/gptq_cuda.hpp"

namespace qforge::plugins::gptq::gpu {

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
