// The vector FP8 kernels (cpu/kernels_avx2.cpp, cpu/kernels_avx512.cpp) against the scalar
// reference, byte for byte: every e4m3 code, floats over the whole 32-bit range with a stride,
// every midpoint between codes +-1 ulp, edges, random millions, F16/BF16/F32 inputs, ragged
// lengths, and the linear accumulation. An ISA this CPU lacks is skipped, saying so.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpu/e4m3.hpp"
#include "cpu/half.hpp"
#include "cpu/kernels.hpp"
#include "fp8_tensor_io.hpp"

namespace qforge::plugins::fp8::cpu {
namespace {

uint32_t bits(float f) { return f32_bits(f); }

float from(uint32_t b) { return f32_of(b); }

// Floats every test feeds the encoders: edges of the format and of float32.
std::vector<float> edge_floats() {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          448.0f,
                          -448.0f,
                          449.0f,
                          -449.0f,
                          464.0f,
                          -464.0f,
                          480.0f,
                          -480.0f,
                          479.0f,
                          465.0f,
                          463.0f,
                          447.0f,
                          432.0f,
                          440.0f,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::max(),
                          -std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::denorm_min(),
                          -std::numeric_limits<float>::denorm_min(),
                          std::ldexp(1.0f, -6),
                          std::ldexp(1.0f, -7),
                          std::ldexp(1.0f, -9),
                          std::ldexp(1.0f, -10),
                          -std::ldexp(1.0f, -10),
                          std::ldexp(3.0f, -11),
                          std::ldexp(1.0f, -11)};
  for (uint32_t nan : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0xFFFFFFFFu,
                       0x7FA5A5A5u, 0xFFB00000u}) {
    v.push_back(from(nan));
  }
  // 464 and 480 +-1 ulp, and float32 subnormals.
  for (float f : {464.0f, 480.0f, 448.0f}) {
    v.push_back(std::nextafter(f, 0.0f));
    v.push_back(std::nextafter(f, 1e9f));
  }
  for (uint32_t b : {1u, 2u, 0x3FFu, 0x400000u, 0x7FFFFFu}) {
    v.push_back(from(b));
    v.push_back(from(b | 0x80000000u));
  }
  return v;
}

// Every midpoint between adjacent finite codes of one sign, +-1 ulp, both signs.
std::vector<float> midpoint_floats() {
  const auto& table = e4m3_table();
  std::vector<float> v;
  for (int c = 0; c < 0x7E; ++c) {
    const float mid = (table[static_cast<size_t>(c)] + table[static_cast<size_t>(c + 1)]) / 2;
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f),
                    table[static_cast<size_t>(c)]}) {
      v.push_back(f);
      v.push_back(-f);
    }
  }
  return v;
}

class Fp8Kernels : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) {
      GTEST_SKIP() << "this CPU lacks " << isa_name(GetParam())
                   << " (its kernels are compiled but cannot run here)";
    }
  }
  Isa isa() const { return GetParam(); }

  // encode via `isa` == scalar encode, reported with the first differing input.
  void expect_encode_matches(const std::vector<float>& x) const {
    std::vector<uint8_t> fast(x.size()), slow(x.size());
    encode(isa(), x.data(), static_cast<int64_t>(x.size()), fast.data());
    scalar::encode(x.data(), static_cast<int64_t>(x.size()), slow.data());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(fast[i], slow[i]) << "input bits 0x" << std::hex << bits(x[i]) << " (" << x[i]
                                  << ") at index " << std::dec << i;
    }
  }
};

TEST_P(Fp8Kernels, DecodesEveryCodeAsTheTable) {
  std::vector<uint8_t> codes;
  for (int rep = 0; rep < 3; ++rep) {
    for (int c = 0; c < 256; ++c) codes.push_back(static_cast<uint8_t>((c * 37 + rep) & 0xFF));
  }
  codes.resize(codes.size() - 5);  // a tail the vector loop leaves to the scalar one
  std::vector<float> fast(codes.size());
  decode(isa(), codes.data(), static_cast<int64_t>(codes.size()), fast.data());
  for (size_t i = 0; i < codes.size(); ++i) {
    ASSERT_EQ(bits(fast[i]), bits(e4m3_to_float(codes[i]))) << "code " << int{codes[i]};
  }
}

TEST_P(Fp8Kernels, EncodesEdgesAndEveryMidpointAsTheScalarReference) {
  expect_encode_matches(edge_floats());
  expect_encode_matches(midpoint_floats());
}

TEST_P(Fp8Kernels, EncodesFloatsAcrossTheWhole32BitRangeAsTheScalarReference) {
  // A stride prime to every power of two visits all exponents, signs and low mantissa patterns.
  constexpr uint64_t kStride = 509;
  std::vector<float> batch;
  batch.reserve(1 << 16);
  for (uint64_t b = 0; b <= 0xFFFFFFFFull; b += kStride) {
    batch.push_back(from(static_cast<uint32_t>(b)));
    if (batch.size() == batch.capacity()) {
      expect_encode_matches(batch);
      if (HasFatalFailure()) return;
      batch.clear();
    }
  }
  expect_encode_matches(batch);
}

TEST_P(Fp8Kernels, EncodesEveryFloatNearTheFormatsRangeAsTheScalarReference) {
  // Every float32 from 2^-12 to 512 (all of e4m3's range, its subnormals and saturation),
  // positive and negative: 2 * 21 * 2^23 values, in batches.
  std::vector<float> batch;
  batch.reserve(1 << 16);
  const uint32_t lo = bits(std::ldexp(1.0f, -12)), hi = bits(512.0f);
  for (uint32_t sign : {0u, 0x80000000u}) {
    for (uint32_t b = lo; b <= hi; ++b) {
      batch.push_back(from(b | sign));
      if (batch.size() == batch.capacity()) {
        expect_encode_matches(batch);
        if (HasFatalFailure()) return;
        batch.clear();
      }
    }
  }
  expect_encode_matches(batch);
}

TEST_P(Fp8Kernels, EncodesRandomFloatsAsTheScalarReference) {
  std::mt19937 rng(6);
  std::uniform_int_distribution<uint32_t> any;
  std::normal_distribution<float> normal(0.0f, 100.0f);
  std::vector<float> x(1 << 20);
  for (int round = 0; round < 4; ++round) {
    for (size_t i = 0; i < x.size(); ++i) x[i] = round % 2 == 0 ? from(any(rng)) : normal(rng);
    expect_encode_matches(x);
    if (HasFatalFailure()) return;
  }
}

// Dense test data of `kind`: random values (and edges) stored in that format.
std::vector<unsigned char> dense_data(Dense kind, int64_t n, unsigned seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sd);
  std::vector<unsigned char> out(static_cast<size_t>(n * dense_size(kind)));
  const std::vector<float> edges = edge_floats();
  for (int64_t i = 0; i < n; ++i) {
    float v = normal(rng);
    if (i % 97 == 13) v = edges[static_cast<size_t>(i / 97) % edges.size()];
    if (i % 89 == 5) v = std::ldexp(normal(rng), -20);  // below e4m3's subnormals after scaling
    scalar::narrow(v, kind, out.data(), i);
  }
  return out;
}

TEST_P(Fp8Kernels, AmaxEncodeScaledAndDecodeScaledMatchScalarForEveryDenseKind) {
  for (Dense kind : {Dense::kF32, Dense::kF16, Dense::kBF16}) {
    for (int64_t n : {0, 1, 7, 8, 15, 16, 31, 32, 33, 100, 128, 1000, 4099}) {
      SCOPED_TRACE("kind " + std::to_string(static_cast<int>(kind)) + ", n " + std::to_string(n));
      std::vector<unsigned char> src = dense_data(kind, n, static_cast<unsigned>(n) + 1, 3.0f);
      // Finite data: the exact maximum; with the edges' Inf/NaN: both say non-finite.
      const uint32_t fast = amax_bits(isa(), kind, src.data(), n);
      const uint32_t slow = scalar::amax_bits(kind, src.data(), n);
      if (slow < 0x7F800000u) {
        EXPECT_EQ(fast, slow);
      } else {
        EXPECT_GE(fast, 0x7F800000u);
      }
      for (int64_t i = 0; i < n; ++i) {  // now without the non-finite ones
        if (!std::isfinite(scalar::widen(kind, src.data(), i)))
          scalar::narrow(1.5f, kind, src.data(), i);
      }
      EXPECT_EQ(amax_bits(isa(), kind, src.data(), n), scalar::amax_bits(kind, src.data(), n));
      for (float scale :
           {1.0f, 448.0f / 3.0f, 0.37f, 1e30f, 1e-30f, std::numeric_limits<float>::max()}) {
        std::vector<uint8_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
        encode_scaled(isa(), kind, src.data(), n, scale, a.data());
        scalar::encode_scaled(kind, src.data(), n, scale, b.data());
        ASSERT_EQ(a, b) << "scale " << scale;
      }
      std::vector<uint8_t> codes(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        codes[static_cast<size_t>(i)] = static_cast<uint8_t>(i * 131 + 7);
      for (float scale : {1.0f, 0.0123f, 1e-30f, 1e-42f, 3e5f, 1e38f}) {
        std::vector<unsigned char> a(src.size(), 0xAB), b(src.size(), 0xCD);
        decode_scaled(isa(), codes.data(), n, scale, kind, a.data());
        scalar::decode_scaled(codes.data(), n, scale, kind, b.data());
        ASSERT_EQ(a, b) << "scale " << scale;
      }
    }
  }
}

TEST_P(Fp8Kernels, ActivationRoundTripsMatchScalar) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int64_t n : {1, 9, 16, 17, 64, 300, 4097}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = normal(rng);
    x[0] = -0.0f;
    if (n > 9) x[9] = std::numeric_limits<float>::quiet_NaN();
    for (float s : {1.0f, 0.0075f, 3.0f / 448.0f, 1e-20f}) {
      std::vector<float> a = x, b = x;
      round_trip_div(isa(), a.data(), n, s);
      scalar::round_trip_div(b.data(), n, s);
      ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "n " << n << ", s " << s;
      std::vector<float> c(x.size()), d(x.size());
      round_trip_mul(isa(), x.data(), n, 1.0f / s, c.data());
      scalar::round_trip_mul(x.data(), n, 1.0f / s, d.data());
      ASSERT_EQ(std::memcmp(c.data(), d.data(), c.size() * 4), 0) << "n " << n << ", s " << s;
    }
  }
}

TEST_P(Fp8Kernels, LinearAccumulationIsBitIdenticalOnRaggedShapes) {
  std::mt19937 rng(12);
  std::uniform_int_distribution<int> code(0, 255);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Shape {
    int64_t rows, cols, bm, bn;
  };
  for (const Shape s : {Shape{37, 100, 16, 48}, Shape{64, 256, 128, 128}, Shape{5, 3, 5, 3},
                        Shape{70, 300, 70, 300}, Shape{33, 130, 8, 7}}) {
    std::vector<uint8_t> codes(static_cast<size_t>(s.rows * s.cols));
    for (auto& c : codes) {
      c = static_cast<uint8_t>(code(rng));
      if ((c & 0x7F) == 0x7F) c = 0x3F;  // NaN weights are not what this compares
    }
    const int64_t sr = (s.rows + s.bm - 1) / s.bm, sc = (s.cols + s.bn - 1) / s.bn;
    std::vector<float> scales(static_cast<size_t>(sr * sc));
    for (auto& v : scales) v = std::fabs(normal(rng)) * 0.01f;
    CodeMatrix w{codes.data(), s.rows, s.cols, scales.data(), s.bm, s.bn, sc};
    for (int64_t tokens : {1, 2, 3, 4, 5, 9}) {
      std::vector<float> x(static_cast<size_t>(tokens * s.cols));
      for (auto& v : x) v = normal(rng);
      std::vector<float> a(static_cast<size_t>(tokens * s.rows), -1.0f), b = a;
      // Two row ranges, split off a block boundary: the result must not depend on it.
      const int64_t split = s.rows / 3;
      linear_accumulate(isa(), w, x.data(), tokens, 0, split, a.data(), s.rows);
      linear_accumulate(isa(), w, x.data(), tokens, split, s.rows, a.data(), s.rows);
      scalar::linear_accumulate(w, x.data(), tokens, 0, s.rows, b.data(), s.rows);
      ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
          << s.rows << "x" << s.cols << " tiles " << s.bm << "x" << s.bn << ", tokens " << tokens;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, Fp8Kernels, ::testing::Values(Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& p) {
                           return std::string(isa_name(p.param));
                         });

// The kernels' F16/BF16 conversions are the plugin's tensor I/O's, exactly.
TEST(Fp8KernelHalves, WidenAndNarrowEqualTheTensorIo) {
  for (Dense kind : {Dense::kF16, Dense::kBF16}) {
    const FloatKind fk = kind == Dense::kF16 ? FloatKind::kF16 : FloatKind::kBF16;
    for (uint32_t h = 0; h < 0x10000u; ++h) {
      const auto half = static_cast<uint16_t>(h);
      int64_t shape = 1;
      DLTensor t{};
      t.data = const_cast<uint16_t*>(&half);
      t.device = DLDevice{kDLCPU, 0};
      t.ndim = 1;
      t.dtype = kind == Dense::kF16 ? DLDataType{kDLFloat, 16, 1} : DLDataType{kDLBfloat, 16, 1};
      t.shape = &shape;
      const float io = read_floats(t, "h").front();
      ASSERT_EQ(bits(scalar::widen(kind, &half, 0)), bits(io)) << "half 0x" << std::hex << h;
    }
    std::mt19937 rng(3);
    std::uniform_int_distribution<uint32_t> any;
    std::vector<float> x;
    for (float f : edge_floats()) x.push_back(f);
    for (uint32_t b = 0x33000000u; b < 0x47800000u; b += 97) x.push_back(from(b));  // F16's range
    for (int i = 0; i < (1 << 20); ++i) x.push_back(from(any(rng)));
    std::vector<uint16_t> a(x.size()), b(x.size());
    write_floats(x.data(), static_cast<int64_t>(x.size()), fk, a.data());
    for (size_t i = 0; i < x.size(); ++i)
      scalar::narrow(x[i], kind, b.data(), static_cast<int64_t>(i));
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(a[i], b[i]) << "float bits 0x" << std::hex << bits(x[i]);
    }
  }
}

TEST(Fp8KernelSelection, EnvironmentPicksASupportedKernelAndFallsBackOtherwise) {
  const char* saved = std::getenv("QFORGE_FP8_KERNEL");
  const std::string keep = saved != nullptr ? saved : "";
  ::unsetenv("QFORGE_FP8_KERNEL");
  const Isa best = select_isa();
  EXPECT_TRUE(isa_supported(best));
  ::setenv("QFORGE_FP8_KERNEL", "scalar", 1);
  EXPECT_EQ(select_isa(), Isa::kScalar);
  ::setenv("QFORGE_FP8_KERNEL", "avx2", 1);
  EXPECT_EQ(select_isa(), isa_supported(Isa::kAvx2) ? Isa::kAvx2 : best);
  ::setenv("QFORGE_FP8_KERNEL", "avx512", 1);
  EXPECT_EQ(select_isa(), isa_supported(Isa::kAvx512) ? Isa::kAvx512 : best);
  ::setenv("QFORGE_FP8_KERNEL", "sse9", 1);
  EXPECT_EQ(select_isa(), best);
  if (saved != nullptr) {
    ::setenv("QFORGE_FP8_KERNEL", keep.c_str(), 1);
  } else {
    ::unsetenv("QFORGE_FP8_KERNEL");
  }
}

}  // namespace
}  // namespace qforge::plugins::fp8::cpu
