// float8_e4m3fn (the "fn" variant: finite, one NaN pattern per sign, no infinities) scalar
// conversion. The bit-exact reference every other FP8 path (vector, GPU) must match.
//
// Format: 1 sign, 4 exponent (bias 7), 3 mantissa bits. Largest finite 0x7E = 448; 0x7F/0xFF are
// NaN; subnormals are m * 2^-9 (smallest 0x01 = 2^-9).
#pragma once

#include <array>
#include <cstdint>

namespace qforge::plugins::fp8::cpu {

inline constexpr float kE4m3Max = 448.0f;  // torch.finfo(torch.float8_e4m3fn).max
inline constexpr uint8_t kE4m3MaxCode = 0x7E;
inline constexpr uint8_t kE4m3NanCode = 0x7F;

// Saturating encode, as a quantizer uses it: round to nearest even; finite magnitudes that round
// above 448 and +-Inf clamp to +-448 (transformers clamps to finfo.max before the cast); NaN keeps
// its sign (0x7F / 0xFF). PyTorch's plain cast (fp8e4m3fn_from_fp32_value) differs only there:
// it yields NaN for |x| > 464 and for Inf, which a quantizer never wants.
uint8_t e4m3_from_float(float x) noexcept;

// Exact decode of one code (every e4m3 value is a float32).
float e4m3_to_float(uint8_t code) noexcept;

// All 256 decoded values, indexed by code.
const std::array<float, 256>& e4m3_table() noexcept;

}  // namespace qforge::plugins::fp8::cpu
