// e4m3fn scalar conversion (cpu/e4m3.hpp) against an oracle built from the format's definition:
// decode from the bit fields, encode = the nearest finite value (ties to the even code),
// saturating to +-448, NaN keeping its sign.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "cpu/e4m3.hpp"

namespace qforge::plugins::fp8::cpu {
namespace {

// Independent decode: sign * 2^(e-7) * (1 + m/8), or m * 2^-9 when e == 0.
double oracle_decode(int code) {
  const double sign = (code & 0x80) != 0 ? -1.0 : 1.0;
  const int e = (code >> 3) & 0xF;
  const int m = code & 0x7;
  if (e == 0) return sign * m * std::pow(2.0, -9);
  return sign * (1.0 + m / 8.0) * std::pow(2.0, e - 7);
}

// Independent saturating encode: search every finite code for the nearest value.
int oracle_encode(float x) {
  if (std::isnan(x)) return std::signbit(x) ? 0xFF : 0x7F;
  const double v = std::fmin(std::fmax(static_cast<double>(x), -448.0), 448.0);
  int best = -1;
  double best_err = std::numeric_limits<double>::infinity();
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;                    // NaN
    if (std::signbit(x) != ((c & 0x80) != 0)) continue;  // keep the sign (also of zero)
    const double err = std::fabs(oracle_decode(c) - v);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best = c;
      best_err = err;
    }
  }
  return best;
}

float from_bits(uint32_t b) {
  float f = 0;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

TEST(Fp8E4m3, DecodesAll256CodesAsTheFormatDefines) {
  for (int c = 0; c < 256; ++c) {
    const float v = e4m3_to_float(static_cast<uint8_t>(c));
    if ((c & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v)) << c;
      EXPECT_EQ(std::signbit(v), c == 0xFF) << c;
      continue;
    }
    EXPECT_EQ(static_cast<double>(v), oracle_decode(c)) << "code " << c;
    EXPECT_EQ(std::signbit(v), (c & 0x80) != 0) << c;  // 0x80 is -0.0
  }
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_to_float(0x08), std::ldexp(1.0f, -6));
}

TEST(Fp8E4m3, EveryFiniteCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    EXPECT_EQ(e4m3_from_float(e4m3_to_float(static_cast<uint8_t>(c))), c) << c;
  }
}

TEST(Fp8E4m3, MidpointsRoundToTheEvenCode) {
  // Between neighbours c and c+1 of one sign, the exact midpoint goes to the even code.
  for (int c = 0; c < 0x7E; ++c) {
    for (int sign : {0, 0x80}) {
      const float lo = e4m3_to_float(static_cast<uint8_t>(c | sign));
      const float hi = e4m3_to_float(static_cast<uint8_t>((c + 1) | sign));
      const float mid = (lo + hi) / 2;  // exact: e4m3 has 3 mantissa bits
      const int even = (c % 2 == 0 ? c : c + 1) | sign;
      EXPECT_EQ(e4m3_from_float(mid), even) << "between codes " << c << " and " << c + 1;
      EXPECT_EQ(e4m3_from_float(std::nextafter(mid, 0.0f)), c | sign) << c;
      EXPECT_EQ(e4m3_from_float(std::nextafter(mid, 2 * hi)), (c + 1) | sign) << c;
    }
  }
}

TEST(Fp8E4m3, EdgeInputs) {
  EXPECT_EQ(e4m3_from_float(448.0f), 0x7E);
  EXPECT_EQ(e4m3_from_float(-448.0f), 0xFE);
  EXPECT_EQ(e4m3_from_float(449.0f), 0x7E);
  EXPECT_EQ(e4m3_from_float(464.0f), 0x7E);  // the tie above 448 rounds to even (448)
  EXPECT_EQ(e4m3_from_float(465.0f), 0x7E);  // PyTorch's plain cast gives NaN here
  EXPECT_EQ(e4m3_from_float(1e30f), 0x7E);
  EXPECT_EQ(e4m3_from_float(-1e30f), 0xFE);
  EXPECT_EQ(e4m3_from_float(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(e4m3_from_float(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(e4m3_from_float(std::nanf("")), 0x7F);
  EXPECT_EQ(e4m3_from_float(-std::nanf("")), 0xFF);
  EXPECT_EQ(e4m3_from_float(0.0f), 0x00);
  EXPECT_EQ(e4m3_from_float(-0.0f), 0x80);
  EXPECT_EQ(e4m3_from_float(std::ldexp(1.0f, -9)), 0x01);   // smallest subnormal
  EXPECT_EQ(e4m3_from_float(std::ldexp(1.0f, -10)), 0x00);  // half of it: tie to even 0
  EXPECT_EQ(e4m3_from_float(std::ldexp(1.5f, -10)), 0x01);
  EXPECT_EQ(e4m3_from_float(-std::ldexp(1.0f, -10)), 0x80);
  EXPECT_EQ(e4m3_from_float(std::ldexp(3.0f, -10)), 0x02);  // 1.5 * 2^-9: tie to even 2
  EXPECT_EQ(e4m3_from_float(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(e4m3_from_float(-std::numeric_limits<float>::denorm_min()), 0x80);
  EXPECT_EQ(e4m3_from_float(std::ldexp(15.5f, -10)), 0x08);  // 7.75 * 2^-9 -> 2^-6 (normal)
}

TEST(Fp8E4m3, MatchesTheOracleOnRandomAndStructuredInputs) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> any_bits;
  int checked = 0;
  for (int i = 0; i < 200000; ++i) {
    // Random bit patterns over the exponents that matter (2^-12 .. 2^10), both signs.
    const uint32_t exp = 115u + (any_bits(rng) % 22u);
    const uint32_t b = (any_bits(rng) & 0x807FFFFFu) | (exp << 23);
    const float x = from_bits(b);
    ASSERT_EQ(e4m3_from_float(x), oracle_encode(x)) << "x=" << x << " bits=" << b;
    ++checked;
  }
  EXPECT_EQ(checked, 200000);
}

}  // namespace
}  // namespace qforge::plugins::fp8::cpu
