#include "float_convert.hpp"

#include <cstring>

namespace qforge::make_model {
namespace {

uint32_t bits_of(float value) noexcept {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// Shifts `value` right by `shift` (1..31) rounding to nearest, ties to even.
uint32_t shift_round_even(uint32_t value, int shift) noexcept {
  const uint32_t q = value >> shift;
  const uint32_t rem = value & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  return (rem > half || (rem == half && (q & 1u))) ? q + 1u : q;
}

}  // namespace

uint16_t float_to_bf16_bits(float value) noexcept {
  const uint32_t bits = bits_of(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN, sign kept
  }
  // A carry out of the mantissa bumps the exponent, and past the largest finite value gives
  // inf: both are the right answers.
  return static_cast<uint16_t>(shift_round_even(bits, 16));
}

uint16_t float_to_fp16_bits(float value) noexcept {
  const uint32_t bits = bits_of(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);   // NaN
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520: inf
  if (abs <= 0x33000000u) return sign;  // <= 2^-25: ties to even give zero
  const int exponent = static_cast<int>(abs >> 23);
  if (exponent < 113) {
    // Subnormal half: count units of 2^-24. A float with biased exponent e holds
    // (mantissa | implicit bit) * 2^(e - 150).
    const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    return static_cast<uint16_t>(sign | shift_round_even(mantissa, 126 - exponent));
  }
  // Normal half: rebias the exponent (127 -> 15) and drop 13 mantissa bits. A rounding carry
  // into the exponent is correct, and the inf case was handled above.
  const uint32_t rebased = ((static_cast<uint32_t>(exponent) - 112u) << 23) | (abs & 0x7FFFFFu);
  return static_cast<uint16_t>(sign | shift_round_even(rebased, 13));
}

}  // namespace qforge::make_model
