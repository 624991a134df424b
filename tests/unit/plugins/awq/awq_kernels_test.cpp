// The AVX2 and AVX-512 kernels give the scalar reference's bits (cpu/kernels.hpp), on
// word-aligned and unaligned output ranges, one token and several. A CPU without the ISA skips
// its test (the development machine has no AVX-512: those tests are compiled, not run there).
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "awq_pack.hpp"
#include "cpu/kernels.hpp"

namespace qforge::plugins::awq::cpu {
namespace {

struct Weights {
  int64_t in = 96, out = 48, group_size = 32;
  std::vector<int32_t> qweight, zeros;
  std::vector<float> scales;
  PackedMatrix matrix() const {
    return PackedMatrix{qweight.data(), in, out, group_size, zeros.data(), scales.data()};
  }
};

Weights random_weights(unsigned seed) {
  Weights w;
  std::mt19937 rng(seed);
  std::vector<uint8_t> codes(static_cast<size_t>(w.in * w.out));
  for (auto& c : codes) c = static_cast<uint8_t>(rng() & 0xFu);
  w.qweight.resize(codes.size() / 8);
  pack_gemm(codes.data(), w.in, w.out, w.qweight.data());
  const int64_t groups = w.in / w.group_size;
  std::uniform_real_distribution<float> scale(1e-3f, 5e-2f);
  for (int64_t n = 0; n < groups * w.out; ++n) {
    w.zeros.push_back(static_cast<int32_t>(rng() & 0xFu));
    w.scales.push_back(scale(rng));
  }
  return w;
}

class AwqVectorKernels : public ::testing::TestWithParam<Isa> {};

TEST_P(AwqVectorKernels, DequantizeIsBitIdenticalToScalar) {
  const Isa isa = GetParam();
  if (!isa_supported(isa)) GTEST_SKIP() << "this CPU has no " << isa_name(isa);
  const Weights w = random_weights(3);
  const PackedMatrix m = w.matrix();
  // Whole rows, a word-aligned window, windows starting / ending inside a word, and a width
  // that leaves an 8-output tail after the 16-lane vectors.
  for (const auto& [o0, o1] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 48}, {8, 40}, {3, 45}, {5, 7}, {17, 48}, {0, 24}}) {
    const int64_t width = o1 - o0;
    std::vector<float> a(static_cast<size_t>(w.in * width), -1.0f), b = a;
    scalar::dequantize_block(m, 0, w.in, o0, o1, a.data(), width);
    dequantize_block(isa, m, 0, w.in, o0, o1, b.data(), width);
    EXPECT_EQ(a, b) << isa_name(isa) << " outputs [" << o0 << ", " << o1 << ")";
  }
}

TEST_P(AwqVectorKernels, AccumulateIsBitIdenticalToScalar) {
  const Isa isa = GetParam();
  if (!isa_supported(isa)) GTEST_SKIP() << "this CPU has no " << isa_name(isa);
  const Weights w = random_weights(4);
  std::vector<float> block(static_cast<size_t>(w.in * w.out));
  scalar::dequantize_block(w.matrix(), 0, w.in, 0, w.out, block.data(), w.out);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t tokens : {1, 4, 7}) {
    std::vector<float> x(static_cast<size_t>(tokens * w.in));
    for (auto& v : x) v = normal(rng);
    for (const auto& [o0, o1] :
         std::vector<std::pair<int64_t, int64_t>>{{0, 48}, {8, 40}, {3, 45}, {0, 24}}) {
      std::vector<float> a(static_cast<size_t>(tokens * w.out), 0.5f), b = a;
      scalar::accumulate(block.data() + o0, w.in, w.out, x.data(), w.in, tokens, o0, o1, a.data(),
                         w.out);
      accumulate(isa, block.data() + o0, w.in, w.out, x.data(), w.in, tokens, o0, o1, b.data(),
                 w.out);
      EXPECT_EQ(a, b) << isa_name(isa) << ", " << tokens << " tokens, outputs [" << o0 << ", " << o1
                      << ")";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, AwqVectorKernels, ::testing::Values(Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& param) {
                           return std::string(isa_name(param.param));
                         });

TEST(AwqKernels, SelectionHonoursTheOverride) {
  ::setenv("QFORGE_AWQ_KERNEL", "scalar", 1);
  EXPECT_EQ(select_isa(), Isa::kScalar);
  ::setenv("QFORGE_AWQ_KERNEL", "avx512", 1);  // unsupported here: falls back to the best
  EXPECT_EQ(select_isa(), isa_supported(Isa::kAvx512) ? Isa::kAvx512
                          : isa_supported(Isa::kAvx2) ? Isa::kAvx2
                                                      : Isa::kScalar);
  ::setenv("QFORGE_AWQ_KERNEL", "sse", 1);  // unknown: the best supported
  EXPECT_EQ(select_isa(), isa_supported(Isa::kAvx512) ? Isa::kAvx512
                          : isa_supported(Isa::kAvx2) ? Isa::kAvx2
                                                      : Isa::kScalar);
  ::unsetenv("QFORGE_AWQ_KERNEL");
}

}  // namespace
}  // namespace qforge::plugins::awq::cpu
