// bitsandbytes' 4-bit codebooks (NF4, FP4) and the signed 8-bit "dynamic" map used by double
// quantization, with the encoders that pick a code (FORMATS.md §2.2, §5 items 1-5).
//
// Every encoder here is "nearest code, ties to the lower code", written as a count of the
// decision thresholds a value lies strictly above: that is CUDA's `x > threshold` tree for NF4
// and FP4 and torch.bucketize(right=False) on the dynamic map's midpoints.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace qforge::plugins::bnb::cpu {

enum class QuantType : uint8_t { kNf4, kFp4 };

// NF4, index order = value order; index 7 is exactly 0 and index 15 exactly 1.
inline constexpr std::array<float, 16> kNf4Code = {-1.0f,
                                                   -0.6961928009986877f,
                                                   -0.5250730514526367f,
                                                   -0.39491748809814453f,
                                                   -0.28444138169288635f,
                                                   -0.18477343022823334f,
                                                   -0.09105003625154495f,
                                                   0.0f,
                                                   0.07958029955625534f,
                                                   0.16093020141124725f,
                                                   0.24611230194568634f,
                                                   0.33791524171829224f,
                                                   0.44070982933044434f,
                                                   0.5626170039176941f,
                                                   0.7229568362236023f,
                                                   1.0f};

// csrc/kernels.cu dQuantizeNF4: the midpoints between codes i and i+1, as float literals.
inline constexpr std::array<float, 15> kNf4Thresholds = {
    -0.8480964004993439f,  -0.6106329262256622f,  -0.4599952697753906f,   -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f,   0.2035212516784668f,   0.2920137718319893f,    0.3893125355243683f,
    0.5016634166240692f,   0.6427869200706482f,   0.8614784181118011f};

// FP4 in index order (bit 3 = sign), as bitsandbytes builds it: the raw float32 magnitudes
// divided in float32 by their maximum 12. Index 8 is +0.0: bitsandbytes' list spells it `-0`,
// which in Python is the integer zero, so the stored quant_map holds +0.0 there (checked against
// bitsandbytes 0.50.2 by tools/reference/bnb4_reference.py).
inline constexpr std::array<float, 16> kFp4Code = {
    0.0f,          0.0625f / 12.0f, 8.0f / 12.0f,  12.0f / 12.0f,    4.0f / 12.0f,  6.0f / 12.0f,
    2.0f / 12.0f,  3.0f / 12.0f,    0.0f,          -0.0625f / 12.0f, -8.0f / 12.0f, -12.0f / 12.0f,
    -4.0f / 12.0f, -6.0f / 12.0f,   -2.0f / 12.0f, -3.0f / 12.0f};

// csrc/kernels.cu dQuantizeFP4: thresholds on |x| between consecutive magnitudes in value order.
inline constexpr std::array<float, 7> kFp4Thresholds = {
    0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
// The 3-bit magnitude pattern of the c-th smallest magnitude.
inline constexpr std::array<uint8_t, 8> kFp4MagnitudeOrder = {0b000, 0b001, 0b110, 0b111,
                                                              0b100, 0b101, 0b010, 0b011};

inline const std::array<float, 16>& codebook(QuantType type) noexcept {
  return type == QuantType::kNf4 ? kNf4Code : kFp4Code;
}

// y is a normalized weight in [-1, 1]. NaN never reaches here (quantize rejects it first).
inline uint8_t encode_nf4(float y) noexcept {
  uint8_t c = 0;
  for (float t : kNf4Thresholds) c = static_cast<uint8_t>(c + (y > t ? 1 : 0));
  return c;
}

// Sign first, then the magnitude: a negative value that rounds to zero keeps its sign bit
// (code 0b1000), as the CUDA kernel does.
inline uint8_t encode_fp4(float y) noexcept {
  const uint8_t sign = y < 0.0f ? 0b1000 : 0;
  const float a = std::fabs(y);
  uint8_t c = 0;
  for (float t : kFp4Thresholds) c = static_cast<uint8_t>(c + (a > t ? 1 : 0));
  return static_cast<uint8_t>(sign | kFp4MagnitudeOrder[c]);
}

inline uint8_t encode_4bit(QuantType type, float y) noexcept {
  return type == QuantType::kNf4 ? encode_nf4(y) : encode_fp4(y);
}

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), bit for bit: sorted,
// 256 float32 values from -0.99296875 to 1.0 with one exact 0. See Note [torch linspace].
const std::array<float, 256>& dynamic_map() noexcept;
// The 255 float32 midpoints (m[i] + m[i+1]) / 2 of the sorted dynamic map.
const std::array<float, 255>& dynamic_map_midpoints() noexcept;
// Index of the nearest dynamic-map value: the number of midpoints strictly below y
// (torch.bucketize(y, midpoints, right=False)), so a value exactly on a midpoint takes the
// lower code.
uint8_t encode_dynamic(float y) noexcept;

// torch.linspace(start, end, steps) for float32, as ATen's CPU kernel computes it.
void torch_linspace_f32(float start, float end, int64_t steps, float* out) noexcept;

}  // namespace qforge::plugins::bnb::cpu
