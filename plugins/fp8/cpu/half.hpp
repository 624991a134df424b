// F16 / BF16 <-> float32 for the kernels' scalar paths and vector tails. They must round exactly
// as fp8_tensor_io's read_floats / write_floats do (nearest even; F16 NaN -> sign | 0x7E00,
// overflow -> Inf; BF16 NaN -> high half | 0x40): tests/unit/plugins/fp8 compares them over all
// 65536 halves and millions of floats.
#pragma once

#include <cstdint>
#include <cstring>

namespace qforge::plugins::fp8::cpu {

inline uint32_t f32_bits(float f) noexcept {
  uint32_t b = 0;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
inline float f32_of(uint32_t b) noexcept {
  float f = 0;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

inline float bf16_to_f32(uint16_t h) noexcept { return f32_of(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32_to_bf16(float f) noexcept {
  const uint32_t b = f32_bits(f);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((b >> 16) | 0x40u);
  return static_cast<uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

inline float f16_to_f32(uint16_t h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  if (e == 0x1F) return f32_of(sign | 0x7F800000u | (m << 13));
  if (e != 0) return f32_of(sign | ((e + 112u) << 23) | (m << 13));
  // Subnormal: m * 2^-24, exact in float32 (m < 2^10, product by a power of two).
  const float v = static_cast<float>(m) * f32_of(0x33800000u);  // 2^-24
  return sign != 0 ? -v : v;
}

inline uint16_t f32_to_f16(float f) noexcept {
  const uint32_t b = f32_bits(f);
  const auto sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00u;
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // rounds to 65536 or more
  const uint32_t exponent = a >> 23;
  if (exponent < 113) {  // half subnormal: round(value * 2^24) = round(m / 2^(126 - exponent))
    if (exponent < 102) return sign;
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - exponent;
    return sign |
           static_cast<uint16_t>((m + (1u << (shift - 1u)) - 1u + ((m >> shift) & 1u)) >> shift);
  }
  return sign | static_cast<uint16_t>(((a + 0xFFFu + ((a >> 13) & 1u)) >> 13) - (112u << 10));
}

}  // namespace qforge::plugins::fp8::cpu
