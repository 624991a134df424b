// LLM.int8 CPU kernels: every ISA variant of the int8 product against the scalar reference
// (exact int32 sums), the run-time choice, and activation quantization with outlier columns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "cpu/half.hpp"
#include "cpu/int8.hpp"
#include "unit/plugins/bnb/bnb_compute_util.hpp"

namespace qforge::plugins::bnb {
namespace {

using cpu::Int8Isa;

std::vector<int8_t> random_bytes(int64_t n, uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_int_distribution<int> dist(-128, 127);  // -128 too: the offset trick's edge
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& b : v) b = static_cast<int8_t>(dist(engine));
  return v;
}

TEST(BnbInt8Kernels, EveryIsaVariantEqualsTheScalarProductExactly) {
  std::vector<std::string> ran;
  for (Int8Isa isa : {Int8Isa::kAvx2, Int8Isa::kAvx512Vnni, Int8Isa::kAmx}) {
    if (!cpu::int8_isa_supported(isa)) continue;
    ran.push_back(cpu::int8_isa_name(isa));
    for (int64_t rows : {1, 2, 3, 4, 5, 16, 17, 33}) {
      for (int64_t in : {1, 15, 16, 63, 64, 65, 130, 4103}) {
        const int64_t out = 37, ldq = in + 3, ldacc = out + 2;
        const auto x = random_bytes(rows * ldq, static_cast<uint32_t>(rows * 1000 + in));
        const auto w = random_bytes(out * in, static_cast<uint32_t>(in * 7 + 1));
        std::vector<int32_t> want(static_cast<size_t>(rows * ldacc), -1), got = want;
        // A partial output range (3 .. out) checks o_begin handling and untouched columns.
        cpu::gemm_int8_scalar(x.data(), rows, ldq, w.data(), in, 3, out, want.data(), ldacc);
        cpu::gemm_int8(isa, x.data(), rows, ldq, w.data(), in, 3, out, got.data(), ldacc);
        ASSERT_EQ(got, want) << cpu::int8_isa_name(isa) << " rows " << rows << " in " << in;
      }
    }
  }
  std::string names;
  for (const auto& n : ran) names += n + " ";
  std::cout << "[ int8 ISA variants checked on this CPU: " << (names.empty() ? "none" : names)
            << "]\n";
}

// A dense row-major weight of `kind` from float values (rounded to the kind).
std::vector<uint8_t> dense_bytes(cpu::Dense kind, const std::vector<float>& v) {
  const size_t size = kind == cpu::Dense::kF32 ? 4 : 2;
  std::vector<uint8_t> out(v.size() * size);
  for (size_t i = 0; i < v.size(); ++i) {
    if (kind == cpu::Dense::kF32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else {
      const uint16_t u = kind == cpu::Dense::kF16 ? cpu::f32_to_f16(v[i]) : cpu::f32_to_bf16(v[i]);
      std::memcpy(&out[i * 2], &u, 2);
    }
  }
  return out;
}

TEST(BnbInt8Kernels, EveryIsaVariantOfTheWeightQuantizerIsBitExact) {
  if (!cpu::int8_isa_supported(Int8Isa::kAvx2)) GTEST_SKIP() << "no AVX2 + F16C on this CPU";
  for (cpu::Dense kind : {cpu::Dense::kF32, cpu::Dense::kF16, cpu::Dense::kBF16}) {
    for (int64_t cols : {1, 7, 8, 31, 32, 33, 100, 4096}) {
      const int64_t rows = 9;
      auto v = test::normal_values(rows * cols, static_cast<uint32_t>(cols));
      for (int64_t k = 0; k < cols; ++k) v[static_cast<size_t>(2 * cols + k)] = 0.0f;  // zero row
      for (int64_t k = 0; k < cols; ++k) {  // a row of exact ties: absmax 127, halves
        v[static_cast<size_t>(4 * cols + k)] = k == 0 ? 127.0f : static_cast<float>(k % 9) - 3.5f;
      }
      v[static_cast<size_t>(6 * cols + cols / 2)] = 3.0e-6f;  // float16 subnormal territory
      v[static_cast<size_t>(7 * cols)] = 1.0e-30f;            // flushes to 0 in float16
      const auto src = dense_bytes(kind, v);
      std::vector<int8_t> want(static_cast<size_t>(rows * cols), 5), got = want;
      std::vector<float> want_s(rows, -1.0f), got_s = want_s;
      ASSERT_EQ(cpu::quantize_dense_int8_scalar(kind, src.data(), cols, 0, rows, want.data(),
                                                want_s.data()),
                rows);
      ASSERT_EQ(
          cpu::quantize_dense_int8_avx2(kind, src.data(), cols, 0, rows, got.data(), got_s.data()),
          rows);
      EXPECT_EQ(got, want) << "kind " << static_cast<int>(kind) << " cols " << cols;
      EXPECT_EQ(got_s, want_s) << "kind " << static_cast<int>(kind) << " cols " << cols;
      // Both stop at the first row that is not finite after the float16 cast.
      if (kind != cpu::Dense::kF16) {
        auto bad = v;
        bad[static_cast<size_t>(5 * cols + cols - 1)] = 70000.0f;  // Inf in float16
        bad[static_cast<size_t>(8 * cols)] = std::nanf("");
        const auto bsrc = dense_bytes(kind, bad);
        EXPECT_EQ(cpu::quantize_dense_int8_scalar(kind, bsrc.data(), cols, 0, rows, want.data(),
                                                  want_s.data()),
                  5);
        EXPECT_EQ(cpu::quantize_dense_int8_avx2(kind, bsrc.data(), cols, 0, rows, got.data(),
                                                got_s.data()),
                  5);
      }
    }
  }
}

TEST(BnbInt8Kernels, EveryIsaVariantOfTheDequantizerIsBitExact) {
  if (!cpu::int8_isa_supported(Int8Isa::kAvx2)) GTEST_SKIP() << "no AVX2 + F16C on this CPU";
  for (cpu::Dense kind : {cpu::Dense::kF32, cpu::Dense::kF16, cpu::Dense::kBF16}) {
    for (int64_t cols : {1, 15, 16, 17, 100, 4096}) {
      const int64_t rows = 5;
      const auto codes = random_bytes(rows * cols, static_cast<uint32_t>(cols + 3));
      std::vector<float> scb = {0.0f, 1.0f, 3.7e-3f, 6.0e4f, 0.4375f};
      const size_t size = kind == cpu::Dense::kF32 ? 4 : 2;
      std::vector<uint8_t> want(static_cast<size_t>(rows * cols) * size, 0xab), got = want;
      cpu::dequantize_dense_int8_scalar(codes.data(), scb.data(), cols, 0, rows, kind, want.data());
      cpu::dequantize_dense_int8_avx2(codes.data(), scb.data(), cols, 0, rows, kind, got.data());
      EXPECT_EQ(got, want) << "kind " << static_cast<int>(kind) << " cols " << cols;
    }
  }
}

TEST(BnbInt8Kernels, ScalarProductIsTheIntegerSum) {
  // The reference itself against a direct int64 sum on extreme values.
  const int64_t in = 1000;
  std::vector<int8_t> x(static_cast<size_t>(in), -128), w(static_cast<size_t>(in), -128);
  w[5] = 127;
  int32_t acc = 0;
  cpu::gemm_int8_scalar(x.data(), 1, in, w.data(), in, 0, 1, &acc, 1);
  EXPECT_EQ(acc, static_cast<int64_t>(in - 1) * 128 * 128 - 128 * 127);
}

TEST(BnbInt8Kernels, KernelChoiceHonoursTheOverride) {
  {
    test::ScopedKernel k("scalar");
    EXPECT_EQ(cpu::select_int8_isa(), Int8Isa::kScalar);
  }
  for (Int8Isa isa : {Int8Isa::kAvx2, Int8Isa::kAvx512Vnni, Int8Isa::kAmx}) {
    test::ScopedKernel k(cpu::int8_isa_name(isa));
    if (cpu::int8_isa_supported(isa)) {
      EXPECT_EQ(cpu::select_int8_isa(), isa);
    } else {
      EXPECT_NE(cpu::select_int8_isa(), isa) << "an unsupported choice must fall back";
      EXPECT_TRUE(cpu::int8_isa_supported(cpu::select_int8_isa()));
    }
  }
  test::ScopedKernel k("no-such-kernel");
  EXPECT_TRUE(cpu::int8_isa_supported(cpu::select_int8_isa()));
}

TEST(BnbInt8Kernels, RoundToCodeIsRoundHalfEven) {
  std::mt19937 engine(17);
  std::uniform_real_distribution<float> dist(-127.4f, 127.4f);
  for (int i = 0; i < 100000; ++i) {
    const float y = dist(engine);
    ASSERT_EQ(cpu::round_to_code(y), static_cast<int8_t>(std::nearbyint(y))) << y;
  }
  for (float y : {-126.5f, -2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, 126.5f}) {
    EXPECT_EQ(cpu::round_to_code(y), static_cast<int8_t>(std::nearbyint(y))) << y;
  }
  EXPECT_EQ(cpu::round_to_code(std::nanf("")), 0);
}

TEST(BnbInt8Kernels, ActivationOutliersAreColumnsAndScalesSkipOutlierElements) {
  // Row 0 holds an outlier in column 2; row 1's column 2 is small. bitsandbytes zeroes the
  // outlier *element* before the row absmax (so row 1's value in column 2 still counts toward
  // its scale) and then zeroes the whole column's codes.
  const int64_t rows = 2, in = 4;
  const std::vector<float> x = {1.0f,  -2.0f, 9.0f,  0.5f,  //
                                0.25f, 0.5f,  -3.0f, 1.0f};
  std::vector<int8_t> q(static_cast<size_t>(rows * in));
  std::vector<float> scale(rows);
  std::vector<uint8_t> outlier(in);
  EXPECT_EQ(cpu::quantize_activations_int8(x.data(), rows, in, 6.0f, q.data(), in, scale.data(),
                                           outlier.data()),
            1);
  EXPECT_EQ(outlier, (std::vector<uint8_t>{0, 0, 1, 0}));
  EXPECT_EQ(scale[0], 2.0f);
  EXPECT_EQ(scale[1], 3.0f);  // from the outlier column's small element
  EXPECT_EQ(q[2], 0);
  EXPECT_EQ(q[6], 0);
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[0], static_cast<int8_t>(std::nearbyint(1.0f * (127.0f / 2.0f))));
  EXPECT_EQ(q[7], static_cast<int8_t>(std::nearbyint(1.0f * (127.0f / 3.0f))));

  // |x| >= threshold is an outlier (6.0 itself is one); threshold 0 means no decomposition.
  const std::vector<float> edge = {6.0f, 5.99f};
  std::vector<int8_t> q2(2);
  std::vector<float> s2(1);
  std::vector<uint8_t> o2(2);
  EXPECT_EQ(
      cpu::quantize_activations_int8(edge.data(), 1, 2, 6.0f, q2.data(), 2, s2.data(), o2.data()),
      1);
  EXPECT_EQ(o2, (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(cpu::quantize_activations_int8(x.data(), rows, in, 0.0f, q.data(), in, scale.data(),
                                           outlier.data()),
            0);
  EXPECT_EQ(scale[0], 9.0f);
  EXPECT_EQ(q[2], 127);
}

}  // namespace
}  // namespace qforge::plugins::bnb
