// Dequantization of known blocks (expected values computed by hand from the block layouts), the
// half/bfloat16 conversions, and the rotary permutation against a reshape/swapaxes reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "convert/half.hpp"
#include "gguf_builder.hpp"
#include "qforge/convert.hpp"

namespace qforge {
namespace {

std::vector<float> dequant(uint32_t type, const std::string& bytes, uint64_t n) {
  std::vector<float> out(n, -12345.0f);
  const Status s = gguf_dequantize(type, reinterpret_cast<const uint8_t*>(bytes.data()),
                                   bytes.size(), n, out.data());
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().to_string());
  return out;
}

TEST(GgufDequantize, Q8_0KnownBlock) {
  std::vector<int8_t> q(32);
  for (int j = 0; j < 32; ++j) q[static_cast<size_t>(j)] = static_cast<int8_t>(j * 8 - 128);
  const std::string bytes =
      test::q8_0_block(test::kHalfHalf, q) + test::q8_0_block(test::kHalfTwo, q);
  const auto out = dequant(kGgmlQ8_0, bytes, 64);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(out[static_cast<size_t>(j)], static_cast<float>(j * 8 - 128) * 0.5f) << j;
    EXPECT_EQ(out[static_cast<size_t>(32 + j)], static_cast<float>(j * 8 - 128) * 2.0f) << j;
  }
}

TEST(GgufDequantize, Q4_0KnownBlockLowNibblesFirst) {
  std::vector<uint8_t> q(32);
  for (size_t j = 0; j < 16; ++j) {
    q[j] = static_cast<uint8_t>(j);
    q[j + 16] = static_cast<uint8_t>(15 - j);
  }
  const auto out = dequant(kGgmlQ4_0, test::q4_0_block(test::kHalfTwo, q), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[static_cast<size_t>(j)], static_cast<float>(j - 8) * 2.0f) << j;
    EXPECT_EQ(out[static_cast<size_t>(j + 16)], static_cast<float>(7 - j) * 2.0f) << j;
  }
  // Byte 0 = 0xF0 exactly: element 0 is the low nibble (0 -> -8d), element 16 the high (15 -> 7d).
  std::string raw = test::gle(test::kHalfOne, 2) + std::string(16, '\0');
  raw[2] = static_cast<char>(0xF0);
  const auto one = dequant(kGgmlQ4_0, raw, 32);
  EXPECT_EQ(one[0], -8.0f);
  EXPECT_EQ(one[16], 7.0f);
  EXPECT_EQ(one[1], -8.0f);
}

TEST(GgufDequantize, Q4_1KnownBlock) {
  std::vector<uint8_t> q(32);
  for (size_t j = 0; j < 32; ++j) q[j] = static_cast<uint8_t>((j * 7) % 16);
  const auto out =
      dequant(kGgmlQ4_1, test::q4_1_block(test::kHalfQuarter, test::kHalfMinusOne, q), 32);
  for (size_t j = 0; j < 32; ++j) {
    EXPECT_EQ(out[j], static_cast<float>(q[j]) * 0.25f - 1.0f) << j;
  }
}

TEST(GgufDequantize, F16AndBF16AndF32) {
  // 1.0, -2.0, smallest subnormal 2^-24, -0.0, +inf, 65504
  const std::string f16 = test::gle(0x3C00, 2) + test::gle(0xC000, 2) + test::gle(0x0001, 2) +
                          test::gle(0x8000, 2) + test::gle(0x7C00, 2) + test::gle(0x7BFF, 2);
  const auto h = dequant(kGgmlF16, f16, 6);
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], std::ldexp(1.0f, -24));
  EXPECT_TRUE(h[3] == 0.0f && std::signbit(h[3]));
  EXPECT_TRUE(std::isinf(h[4]));
  EXPECT_EQ(h[5], 65504.0f);
  const std::string bf16 = test::gle(0x3F80, 2) + test::gle(0xC0A0, 2);
  const auto b = dequant(kGgmlBF16, bf16, 2);
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -5.0f);
  const auto f = dequant(kGgmlF32, test::f32_le({3.25f, -0.0f}), 2);
  EXPECT_EQ(f[0], 3.25f);
}

TEST(GgufDequantize, RejectsWrongSizesAndPartialBlocks) {
  std::vector<float> out(64);
  const std::string block(34, '\0');
  const auto* p = reinterpret_cast<const uint8_t*>(block.data());
  Status s = gguf_dequantize(kGgmlQ8_0, p, block.size(), 64, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().summary(), "GGUF tensor data size mismatch");
  s = gguf_dequantize(kGgmlQ8_0, p, block.size(), 16, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().summary(), "GGUF element count not a whole number of blocks");
  s = gguf_dequantize(12 /* Q4_K */, p, block.size(), 32, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().summary(), "GGUF tensor type not supported");
  EXPECT_NE(s.error().why().find("Q4_K"), std::string::npos);
}

TEST(HalfConversion, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(half_to_float(float_to_half(f)))) << h;
      continue;
    }
    ASSERT_EQ(float_to_half(f), h) << h;
  }
}

TEST(HalfConversion, RoundsToNearestEven) {
  // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties to the even mantissa (1.0).
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(float_to_half(65520.0f), 0x7C00);  // halfway to 2^16: rounds to inf
  EXPECT_EQ(float_to_half(65519.0f), 0x7BFF);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0: even
  EXPECT_EQ(float_to_half(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie: even
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

// llama.cpp's permute written as the reshape it is: view rows as [n_head, 2, half] (HF) and
// swap the last two axes -> [n_head, half, 2] (GGUF).
std::vector<float> reference_permute(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     int64_t n_head) {
  const int64_t half = rows / n_head / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t a = 0; a < 2; ++a)
      for (int64_t b = 0; b < half; ++b)
        for (int64_t c = 0; c < cols; ++c) {
          const int64_t src = ((h * 2 + a) * half + b) * cols + c;  // [h][a][b]
          const int64_t dst = ((h * half + b) * 2 + a) * cols + c;  // [h][b][a]
          out[static_cast<size_t>(dst)] = w[static_cast<size_t>(src)];
        }
  return out;
}

TEST(RotaryPermutation, MatchesReferenceAndRoundTrips) {
  for (const auto& [rows, cols, n_head] :
       {std::tuple<int64_t, int64_t, int64_t>{4, 1, 1}, {24, 3, 3}, {64, 5, 4}, {16, 2, 8}}) {
    std::vector<float> hf(static_cast<size_t>(rows * cols));
    for (size_t i = 0; i < hf.size(); ++i) hf[i] = static_cast<float>(i) * 0.5f - 3.0f;
    std::vector<float> gguf(hf.size()), back(hf.size());
    ASSERT_TRUE(permute_rotary_rows(hf.data(), gguf.data(), rows, cols, n_head).ok());
    EXPECT_EQ(gguf, reference_permute(hf, rows, cols, n_head)) << rows << "x" << cols;
    ASSERT_TRUE(unpermute_rotary_rows(gguf.data(), back.data(), rows, cols, n_head).ok());
    EXPECT_EQ(back, hf);
    if (rows / n_head > 2) {
      EXPECT_NE(gguf, hf);
    }
  }
  // One head of 4 rows: HF rows [r0 r1 | r2 r3] become GGUF [r0 r2 r1 r3].
  const std::vector<float> hf{0, 1, 2, 3};
  std::vector<float> g(4);
  ASSERT_TRUE(permute_rotary_rows(hf.data(), g.data(), 4, 1, 1).ok());
  EXPECT_EQ(g, (std::vector<float>{0, 2, 1, 3}));
}

TEST(RotaryPermutation, RejectsRowsThatDoNotSplitIntoHeads) {
  std::vector<float> a(12), b(12);
  const Status s = unpermute_rotary_rows(a.data(), b.data(), 6, 2, 2);  // head_dim 3 is odd
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().summary(), "rotary permutation impossible");
}

}  // namespace
}  // namespace qforge
