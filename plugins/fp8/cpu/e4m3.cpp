// Scalar float32 <-> float8_e4m3fn by integer arithmetic, so the result does not depend on the
// floating-point rounding mode or on compiler contraction.
#include "cpu/e4m3.hpp"

#include <cmath>
#include <cstring>

namespace qforge::plugins::fp8::cpu {
namespace {

uint32_t bits_of(float x) noexcept {
  uint32_t b = 0;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// Rounds m / 2^shift to the nearest integer, ties to even (shift >= 1).
uint32_t round_shift_even(uint32_t m, uint32_t shift) noexcept {
  if (shift >= 32) return 0;
  const uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  return (rem > half || (rem == half && (q & 1u) != 0)) ? q + 1u : q;
}

float decode(uint8_t code) noexcept {
  const float sign = (code & 0x80u) != 0 ? -1.0f : 1.0f;
  const int e = (code >> 3) & 0xF;
  const int m = code & 0x7;
  if (e == 0xF && m == 0x7) return std::copysign(std::nanf(""), sign);
  if (e == 0) return sign * std::ldexp(static_cast<float>(m), -9);
  return sign * std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7);
}

}  // namespace

uint8_t e4m3_from_float(float x) noexcept {
  const uint32_t b = bits_of(x);
  const auto sign = static_cast<uint8_t>((b >> 24) & 0x80u);
  const uint32_t a = b & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | kE4m3NanCode;
  if (a >= 0x43E00000u) return sign | kE4m3MaxCode;  // >= 448 (and Inf): saturate
  const uint32_t exponent = a >> 23;                 // biased float32 exponent
  if (exponent < 121) {
    // Below 2^-6, e4m3's smallest normal: a multiple of 2^-9. value = M * 2^(exponent-150);
    // code = round(value * 2^9) = round(M / 2^(141-exponent)). 8 (= 2^-6) is code 0x08, the
    // smallest normal, so carrying out of the subnormal range needs no special case.
    if (exponent == 0) return sign;  // float32 subnormals are far below 2^-10
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    return sign | static_cast<uint8_t>(round_shift_even(m, 141u - exponent));
  }
  // Normal: keep 3 mantissa bits with round-to-nearest-even; a carry moves into the exponent.
  // Below 448 nothing rounds past 0x7E (448 itself is the largest value under 464).
  const uint32_t rounded = round_shift_even(a, 20);  // (exponent << 3 | mantissa3), rounded
  return sign | static_cast<uint8_t>(rounded - (120u << 3));
}

float e4m3_to_float(uint8_t code) noexcept { return e4m3_table()[code]; }

const std::array<float, 256>& e4m3_table() noexcept {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[static_cast<size_t>(c)] = decode(static_cast<uint8_t>(c));
    return t;
  }();
  return table;
}

}  // namespace qforge::plugins::fp8::cpu
