// AutoAWQ packing on hand-written words (Note [AWQ pack order]), its inverse, GEMV's layout and
// calculate_zeros_width, and GEMM and GEMV holding the same weights.
#include "awq_pack.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace qforge::plugins::awq {
namespace {

std::vector<uint8_t> random_codes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& c : v) c = static_cast<uint8_t>(rng() & 0xFu);
  return v;
}

TEST(AwqPack, OrderAndReverseOrderAreInverses) {
  for (int k = 0; k < kPackNum; ++k) {
    EXPECT_EQ(kAwqReverseOrder[kAwqOrder[k]], k);
    EXPECT_EQ(kAwqOrder[kAwqReverseOrder[k]], k);
  }
}

TEST(AwqPack, GemmSlotKHoldsColumnAwqOrderK) {
  // Columns 0..7 hold the values 0..7: slot k then holds AWQ_ORDER[k], so reading the nibbles
  // from the low end gives 0, 2, 4, 6, 1, 3, 5, 7.
  const uint8_t row[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  int32_t word = 0;
  pack_gemm(row, 1, 8, &word);
  EXPECT_EQ(static_cast<uint32_t>(word), 0x75316420u);
  // Column j alone set to 0xF lands in slot kAwqReverseOrder[j].
  for (int j = 0; j < 8; ++j) {
    uint8_t one[8] = {};
    one[j] = 0xF;
    pack_gemm(one, 1, 8, &word);
    EXPECT_EQ(static_cast<uint32_t>(word), 0xFu << (4 * kAwqReverseOrder[j])) << j;
  }
  // High codes make the word negative as int32 (AutoAWQ's torch.int32).
  const uint8_t high[8] = {15, 15, 15, 15, 15, 15, 15, 15};
  pack_gemm(high, 1, 8, &word);
  EXPECT_EQ(word, -1);
}

TEST(AwqPack, GemmUnpacksHandWrittenWords) {
  const int32_t words[2] = {static_cast<int32_t>(0x75316420u), static_cast<int32_t>(0x8ECA9DB0u)};
  uint8_t values[16] = {};
  unpack_gemm(words, 1, 16, values);
  for (int j = 0; j < 8; ++j) EXPECT_EQ(values[j], j);
  // 0x8ECA9DB0: slots 0..7 = 0,B,D,9,A,C,E,8 -> columns 8 + AWQ_ORDER[k].
  const uint8_t expected[8] = {0x0, 0xA, 0xB, 0xC, 0xD, 0xE, 0x9, 0x8};
  for (int j = 0; j < 8; ++j) EXPECT_EQ(values[8 + j], expected[j]) << j;
  for (int j = 0; j < 16; ++j) EXPECT_EQ(gemm_value(words, j), values[j]);
}

TEST(AwqPack, GemmRoundTrips) {
  const int64_t rows = 5, cols = 24;
  const std::vector<uint8_t> v = random_codes(static_cast<size_t>(rows * cols), 1);
  std::vector<int32_t> w(static_cast<size_t>(rows * cols / 8));
  pack_gemm(v.data(), rows, cols, w.data());
  std::vector<uint8_t> back(v.size());
  unpack_gemm(w.data(), rows, cols, back.data());
  EXPECT_EQ(back, v);
}

TEST(AwqPack, GemvPacksInputsInNaturalOrder) {
  // One output, inputs 0..7 hold 0..7: slot k holds input k.
  const uint8_t codes[8] = {0, 1, 2, 3, 4, 5, 6, 7};  // [in 8, out 1]
  int32_t word = 0;
  pack_gemv_qweight(codes, 8, 1, &word);
  EXPECT_EQ(static_cast<uint32_t>(word), 0x76543210u);
  // Two groups in a width of 4 words: only the first word's two low slots are used.
  const uint8_t zeros[2] = {0x3, 0xC};  // [groups 2, out 1]
  int32_t qz[4] = {9, 9, 9, 9};
  pack_gemv_qzeros(zeros, 2, 1, 4, qz);
  EXPECT_EQ(qz[0], 0xC3);
  EXPECT_EQ(qz[1], 0);
  EXPECT_EQ(qz[3], 0);
  uint8_t back[2] = {};
  unpack_gemv_qzeros(qz, 2, 1, 4, back);
  EXPECT_EQ(back[0], 0x3);
  EXPECT_EQ(back[1], 0xC);
}

TEST(AwqPack, GemvRoundTripsAndRepacksToGemm) {
  const int64_t in = 32, out = 16;
  const std::vector<uint8_t> codes = random_codes(static_cast<size_t>(in * out), 2);
  std::vector<int32_t> gemv(static_cast<size_t>(in * out / 8));
  pack_gemv_qweight(codes.data(), in, out, gemv.data());
  std::vector<uint8_t> back(codes.size());
  unpack_gemv_qweight(gemv.data(), in, out, back.data());
  EXPECT_EQ(back, codes);
  std::vector<int32_t> gemm(gemv.size()), repacked(gemv.size());
  pack_gemm(codes.data(), in, out, gemm.data());
  gemv_to_gemm_qweight(gemv.data(), in, out, repacked.data());
  EXPECT_EQ(repacked, gemm);
}

TEST(AwqPack, GemvZerosWidthIsAutoAwqsCalculateZerosWidth) {
  EXPECT_EQ(gemv_zeros_width(4096, 128), 4);    // 32 groups in 4 words
  EXPECT_EQ(gemv_zeros_width(11008, 128), 11);  // 86 groups -> 11 words
  EXPECT_EQ(gemv_zeros_width(4096, 64), 8);     // 64 groups, width a multiple of 2
  EXPECT_EQ(gemv_zeros_width(64, 64), 2);       // 1 group padded to 2 words
  EXPECT_EQ(gemv_zeros_width(64, 32), 4);       // 2 groups padded to 4 words
  EXPECT_EQ(gemv_zeros_width(4096, 16), 0);     // NotImplementedError in AutoAWQ
  EXPECT_EQ(gemv_zeros_width(4096, 96), 0);
}

}  // namespace
}  // namespace qforge::plugins::awq
