// AutoGPTQ packing (FORMATS.md §2.4): round trips for 2/3/4/8 bits, the words an independent
// re-implementation of AutoGPTQ's pack loops wrote (tests/reference/gptq), 3-bit straddling.
#include "gptq_pack.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

namespace qforge::plugins::gptq {
namespace {

nlohmann::json reference() {
  std::ifstream f(std::string(QFORGE_SOURCE_DIR) +
                  "/tests/reference/gptq/autogptq_pack_words.json");
  return nlohmann::json::parse(f);
}

class GptqPackBits : public ::testing::TestWithParam<int> {};

TEST_P(GptqPackBits, QweightRoundTrips) {
  const int bits = GetParam();
  const int64_t in = 96, out = 40;  // 96 * 3 = 288 = 9 words: straddles included
  std::mt19937 rng(static_cast<unsigned>(bits));
  std::vector<uint8_t> codes(static_cast<size_t>(in * out));
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % (1u << bits));
  std::vector<int32_t> words(static_cast<size_t>(in * bits / 32 * out));
  pack_qweight(codes.data(), in, out, bits, words.data());
  std::vector<uint8_t> back(codes.size());
  unpack_qweight(words.data(), in, out, bits, back.data());
  EXPECT_EQ(back, codes);
}

TEST_P(GptqPackBits, QzerosRoundTripV1AndV2) {
  const int bits = GetParam();
  const int64_t groups = 3, out = 64;
  std::mt19937 rng(static_cast<unsigned>(bits + 10));
  for (bool v2 : {false, true}) {
    std::vector<int32_t> zeros(static_cast<size_t>(groups * out));
    // v1 cannot store 0 (it stores zero - 1): its zeros lie in [1, maxq].
    for (auto& z : zeros) z = static_cast<int32_t>(rng() % ((1u << bits) - 1)) + (v2 ? 0 : 1);
    std::vector<int32_t> words(static_cast<size_t>(groups * out * bits / 32));
    pack_qzeros(zeros.data(), groups, out, bits, v2, words.data());
    std::vector<int32_t> back(zeros.size());
    unpack_qzeros(words.data(), groups, out, bits, v2, back.data());
    EXPECT_EQ(back, zeros) << (v2 ? "v2" : "v1");
  }
}

TEST_P(GptqPackBits, WordsEqualAutoGptqsPackLoops) {
  const int bits = GetParam();
  const nlohmann::json ref = reference()[std::to_string(bits)];
  const int64_t in = 64, out = 32, groups = 2;
  const int m = 1 << bits;
  std::vector<uint8_t> codes(static_cast<size_t>(in * out));
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t o = 0; o < out; ++o)
      codes[static_cast<size_t>(i * out + o)] = static_cast<uint8_t>((7 * i + 13 * o + 5) % m);
  }
  std::vector<int32_t> qweight(static_cast<size_t>(in * bits / 32 * out));
  pack_qweight(codes.data(), in, out, bits, qweight.data());
  EXPECT_EQ(qweight, ref["qweight"].get<std::vector<int32_t>>());
  std::vector<int32_t> zeros(static_cast<size_t>(groups * out));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o)
      zeros[static_cast<size_t>(g * out + o)] = static_cast<int32_t>(1 + (5 * g + 3 * o) % (m - 1));
  }
  std::vector<int32_t> qzeros(static_cast<size_t>(groups * out * bits / 32));
  pack_qzeros(zeros.data(), groups, out, bits, false, qzeros.data());
  EXPECT_EQ(qzeros, ref["qzeros_v1"].get<std::vector<int32_t>>());
}

INSTANTIATE_TEST_SUITE_P(Bits, GptqPackBits, ::testing::Values(2, 3, 4, 8));

TEST(GptqPack, ThreeBitValuesStraddleWords) {
  // One input column of 32 values: only value 10 (bits 30..32) and value 21 (bits 63..65) are 7.
  std::vector<uint8_t> codes(32, 0);
  codes[10] = 7;
  codes[21] = 7;
  std::vector<int32_t> words(3);
  pack_qweight(codes.data(), 32, 1, 3, words.data());
  EXPECT_EQ(static_cast<uint32_t>(words[0]), 0xC0000000u);
  EXPECT_EQ(static_cast<uint32_t>(words[1]), 0x80000001u);
  EXPECT_EQ(static_cast<uint32_t>(words[2]), 0x00000003u);
  EXPECT_EQ(qweight_code(words.data(), 1, 3, 10, 0), 7u);
  EXPECT_EQ(qweight_code(words.data(), 1, 3, 21, 0), 7u);
}

TEST(GptqPack, V1StoredMaxqReadsAsTwoToTheBits) {
  // AutoGPTQ's reader masks then adds 1: a stored 0xF is zero 16 at 4 bits.
  const int32_t word = static_cast<int32_t>(0xFFFFFFFFu);
  std::vector<int32_t> zeros(8);
  unpack_qzeros(&word, 1, 8, 4, false, zeros.data());
  for (int32_t z : zeros) EXPECT_EQ(z, 16);
  unpack_qzeros(&word, 1, 8, 4, true, zeros.data());
  for (int32_t z : zeros) EXPECT_EQ(z, 15);
}

}  // namespace
}  // namespace qforge::plugins::gptq
