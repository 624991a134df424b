// Scalar quantization kernels: blockwise 4-bit and the 8-bit double quantization of absmax.
// Quantize runs once per checkpoint and is dominated by reading the weight, so it stays
// scalar (the compiler vectorizes the threshold counts).
#include <algorithm>
#include <cmath>

#include "cpu/kernels.hpp"

namespace qforge::plugins::bnb::cpu {
namespace {

// bitsandbytes' CPU path clamps the divisor so an all-zero block scales 0 * 1e38 = 0
// instead of 0 * inf = NaN; the stored absmax stays 0, so the block dequantizes to zeros.
constexpr float kMinAbsmax = 1e-38f;

float clamp_unit(float v) noexcept { return std::min(1.0f, std::max(-1.0f, v)); }

}  // namespace

float quantize_block_4bit(QuantType type, const float* w, int64_t count, uint8_t* codes) noexcept {
  float absmax = 0.0f;
  for (int64_t i = 0; i < count; ++i) absmax = std::max(absmax, std::fabs(w[i]));
  // y = x * (1 / absmax) as bitsandbytes computes it (a reciprocal, then a product).
  const float inv = 1.0f / std::max(absmax, kMinAbsmax);
  for (int64_t i = 0; i < count; ++i) codes[i] = encode_4bit(type, clamp_unit(w[i] * inv));
  return absmax;
}

void quantize_blocks_4bit(QuantType type, const float* w, int64_t n, int64_t block_begin,
                          int64_t block_end, uint8_t* packed, float* absmax) noexcept {
  uint8_t codes[kBlock + 1];
  for (int64_t b = block_begin; b < block_end; ++b) {
    const int64_t e0 = b * kBlock;
    const int64_t count = std::min(kBlock, n - e0);
    absmax[b] = quantize_block_4bit(type, w + e0, count, codes);
    codes[count] = 0;  // odd n: the last byte's low nibble is padding code 0
    uint8_t* out = packed + e0 / 2;
    for (int64_t i = 0; i < count; i += 2) {
      out[i / 2] = static_cast<uint8_t>((codes[i] << 4) | codes[i + 1]);
    }
  }
}

float double_quantize(const float* absmax, int64_t count, uint8_t* codes, float* nested) noexcept {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += absmax[i];
  const float offset = count > 0 ? static_cast<float>(sum / static_cast<double>(count)) : 0.0f;
  constexpr int64_t kNested = 256;
  for (int64_t b0 = 0, nb = 0; b0 < count; b0 += kNested, ++nb) {
    const int64_t end = std::min(count, b0 + kNested);
    float m = 0.0f;
    for (int64_t i = b0; i < end; ++i) m = std::max(m, std::fabs(absmax[i] - offset));
    nested[nb] = m;
    const float inv = 1.0f / std::max(m, kMinAbsmax);
    for (int64_t i = b0; i < end; ++i) {
      codes[i] = encode_dynamic(clamp_unit((absmax[i] - offset) * inv));
    }
  }
  return offset;
}

}  // namespace qforge::plugins::bnb::cpu
