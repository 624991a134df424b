// The 4-bit codebooks, their decision thresholds and the dynamic 8-bit map, bit for bit with
// FORMATS.md §2.2 and §5 items 1-3 and 5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <utility>

#include "cpu/codebook.hpp"

namespace qforge::plugins::bnb::cpu {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float up(float f) { return std::nextafter(f, std::numeric_limits<float>::infinity()); }

TEST(BnbCodebook, Nf4IsTheTableInFormatsMd) {
  // FORMATS.md §2.2, as Python prints the float32 values.
  const double expected[16] = {-1.0,
                               -0.6961928009986877,
                               -0.5250730514526367,
                               -0.39491748809814453,
                               -0.28444138169288635,
                               -0.18477343022823334,
                               -0.09105003625154495,
                               0.0,
                               0.07958029955625534,
                               0.16093020141124725,
                               0.24611230194568634,
                               0.33791524171829224,
                               0.44070982933044434,
                               0.5626170039176941,
                               0.7229568362236023,
                               1.0};
  for (int i = 0; i < 16; ++i) {
    // The printed digits are the exact float32 values: widening must give them back.
    EXPECT_EQ(static_cast<double>(kNf4Code[static_cast<size_t>(i)]), expected[i]) << i;
  }
  EXPECT_EQ(bits(kNf4Code[7]), 0u);  // +0.0
}

TEST(BnbCodebook, Nf4ThresholdsAreTheCudaLiteralsAtTheMidpoints) {
  // FORMATS.md §2.2, the literals of csrc/kernels.cu dQuantizeNF4.
  // Parsed straight to float, as nvcc reads the `f` literals: each is (nearly) a tie between
  // two floats, so going through double first would round four of them the other way.
  const char* cuda[15] = {"-0.8480964004993439",   "-0.6106329262256622",  "-0.4599952697753906",
                          "-0.33967943489551544",  "-0.23460740596055984", "-0.13791173323988914",
                          "-0.045525018125772476", "0.03979014977812767",  "0.1202552504837513",
                          "0.2035212516784668",    "0.2920137718319893",   "0.3893125355243683",
                          "0.5016634166240692",    "0.6427869200706482",   "0.8614784181118011"};
  for (size_t i = 0; i < kNf4Thresholds.size(); ++i) {
    EXPECT_EQ(kNf4Thresholds[i], std::strtof(cuda[i], nullptr)) << i;
    // The literals are the midpoints of the table to within one float32 step (four of them
    // round the other way from the float32 midpoint; the kernel's literal wins).
    const float mid = static_cast<float>((static_cast<double>(kNf4Code[i]) + kNf4Code[i + 1]) / 2);
    EXPECT_LE(std::fabs(kNf4Thresholds[i] - mid), std::fabs(std::nextafter(mid, 2.0f) - mid)) << i;
  }
}

TEST(BnbCodebook, Fp4IsTheIndexOrderedTableWithTheSignInBit3) {
  const double raw[8] = {0, 0.0625, 8, 12, 4, 6, 2, 3};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(kFp4Code[static_cast<size_t>(i)], static_cast<float>(raw[i]) / 12.0f) << i;
    EXPECT_EQ(kFp4Code[static_cast<size_t>(i + 8)], -static_cast<float>(raw[i]) / 12.0f) << i;
  }
  // bitsandbytes writes `-0` in a Python list: the integer zero, so the stored map holds +0.0.
  EXPECT_FALSE(std::signbit(kFp4Code[8]));
  EXPECT_FALSE(std::signbit(kFp4Code[0]));
  EXPECT_FLOAT_EQ(kFp4Code[1], 0.005208333f);
  EXPECT_FLOAT_EQ(kFp4Code[2], 0.6666667f);
}

TEST(BnbEncode, Nf4TiesGoToTheLowerCode) {
  for (size_t i = 0; i < kNf4Thresholds.size(); ++i) {
    EXPECT_EQ(encode_nf4(kNf4Thresholds[i]), i) << i;
    EXPECT_EQ(encode_nf4(up(kNf4Thresholds[i])), i + 1) << i;
  }
  for (size_t i = 0; i < 16; ++i) EXPECT_EQ(encode_nf4(kNf4Code[i]), i);
  EXPECT_EQ(encode_nf4(0.0f), 7);
  EXPECT_EQ(encode_nf4(-0.0f), 7);
}

TEST(BnbEncode, Nf4PicksTheNearestCode) {
  std::mt19937 engine(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int k = 0; k < 100000; ++k) {
    const float y = dist(engine);
    size_t best = 0;
    for (size_t i = 1; i < 16; ++i) {
      if (std::fabs(y - kNf4Code[i]) < std::fabs(y - kNf4Code[best])) best = i;
    }
    ASSERT_EQ(encode_nf4(y), best) << y;
  }
}

TEST(BnbEncode, Fp4UsesTheCudaMagnitudeThresholdsWithTiesDown) {
  // Magnitudes in value order and the code each range maps to (FORMATS.md §2.2).
  const uint8_t order[8] = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
  EXPECT_EQ(encode_fp4(0.0f), 0);
  for (size_t i = 0; i < kFp4Thresholds.size(); ++i) {
    const float t = kFp4Thresholds[i];
    EXPECT_EQ(encode_fp4(t), order[i]) << i;
    EXPECT_EQ(encode_fp4(up(t)), order[i + 1]) << i;
    EXPECT_EQ(encode_fp4(-t), 0b1000 | order[i]) << i;
    EXPECT_EQ(encode_fp4(-up(t)), 0b1000 | order[i + 1]) << i;
  }
  for (size_t i = 0; i < 16; ++i) {
    if (i == 8) continue;  // -0 encodes as +0 (x < 0 is false)
    EXPECT_EQ(encode_fp4(kFp4Code[i]), i) << i;
  }
  EXPECT_EQ(encode_fp4(1.0f), 0b0011);
  EXPECT_EQ(encode_fp4(-1.0f), 0b1011);
  EXPECT_EQ(encode_fp4(-0.001f), 0b1000);  // rounds to zero, keeps the sign bit
}

TEST(BnbDynamicMap, TorchLinspaceSplitsAtHalfway) {
  float v[5];
  torch_linspace_f32(0.1f, 1.0f, 5, v);
  const float step = (1.0f - 0.1f) / 4.0f;
  EXPECT_EQ(v[0], 0.1f);
  EXPECT_EQ(v[1], 0.1f + step);
  EXPECT_EQ(v[2], 1.0f - step * 2.0f);  // i >= steps / 2 counts back from the end
  EXPECT_EQ(v[4], 1.0f);
  float two[2];
  torch_linspace_f32(0.1f, 1.0f, 2, two);
  EXPECT_EQ(two[0], 0.1f);
  EXPECT_EQ(two[1], 1.0f);
}

// Values torch.linspace(0.1, 1, 65) gives (torch 2.15, AVX2/AVX-512 kernels), as bit patterns:
// each is one fused rounding; separate multiply-then-add roundings give a neighbour instead.
TEST(BnbDynamicMap, TorchLinspaceRoundsOnceLikeTheVectorizedKernel) {
  float v[65];
  torch_linspace_f32(0.1f, 1.0f, 65, v);
  const std::pair<int, uint32_t> pinned[] = {
      {6, 0x3e3ccccdu}, {12, 0x3e89999au}, {30, 0x3f059999u}, {33, 0x3f106667u}, {38, 0x3f226667u}};
  for (const auto& [index, bits] : pinned) {
    uint32_t got = 0;
    std::memcpy(&got, &v[index], sizeof got);
    EXPECT_EQ(got, bits) << "linspace(0.1, 1, 65)[" << index << "] = " << v[index];
  }
}

TEST(BnbDynamicMap, HasTheShapeFormatsMdDescribes) {
  const auto& map = dynamic_map();
  EXPECT_TRUE(std::is_sorted(map.begin(), map.end()));
  EXPECT_EQ(map[255], 1.0f);
  EXPECT_EQ(map[0], -0.99296875f);
  EXPECT_EQ(map[254], 0.99296875f);
  EXPECT_EQ(std::count(map.begin(), map.end(), 0.0f), 1);
  float smallest = 1.0f;
  for (float v : map) {
    if (v != 0.0f) smallest = std::min(smallest, std::fabs(v));
  }
  EXPECT_NEAR(smallest, 5.5e-7, 1e-12);
  // Symmetric but for +1.0: every negative value has its positive twin.
  for (size_t i = 0; i < 127; ++i) EXPECT_EQ(map[i], -map[254 - i]) << i;
}

TEST(BnbDynamicMap, EncodesToTheNearestValueWithTiesDown) {
  const auto& map = dynamic_map();
  const auto& mid = dynamic_map_midpoints();
  for (size_t i = 0; i < 256; ++i) EXPECT_EQ(encode_dynamic(map[i]), i) << i;
  for (size_t i = 0; i < mid.size(); ++i) {
    EXPECT_EQ(encode_dynamic(mid[i]), i) << i;  // on the midpoint: the lower value
    EXPECT_EQ(encode_dynamic(up(mid[i])), i + 1) << i;
  }
  EXPECT_EQ(encode_dynamic(-1.0f), 0);
}

}  // namespace
}  // namespace qforge::plugins::bnb::cpu
