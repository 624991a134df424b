// The whole-block quantize / dequantize kernels on dense F32 / F16 / BF16 memory: every ISA
// this CPU runs (and the scalar one) must equal the scalar reference bit for bit, on random
// weights and on the values where an encoder could go wrong (exactly on a threshold, one ulp
// either side, zeros, subnormals, the largest finite values).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/half.hpp"
#include "cpu/kernels.hpp"
#include "unit/plugins/bnb/bnb_compute_util.hpp"

namespace qforge::plugins::bnb {
namespace {

using cpu::Dense;
using cpu::Isa;
using cpu::QuantType;

const char* dense_name(Dense d) {
  return d == Dense::kF32 ? "F32" : (d == Dense::kF16 ? "F16" : "BF16");
}

std::vector<Isa> isas_here() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (cpu::isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

// The weights as stored bytes of `kind`, and the float32 values those bytes hold.
struct Stored {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

Stored store(const std::vector<float>& v, Dense kind) {
  Stored s;
  const size_t size = kind == Dense::kF32 ? 4 : 2;
  s.bytes.resize(v.size() * size);
  s.values.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (kind == Dense::kF32) {
      std::memcpy(&s.bytes[i * 4], &v[i], 4);
      s.values[i] = v[i];
      continue;
    }
    const uint16_t h = kind == Dense::kF16 ? cpu::f32_to_f16(v[i]) : cpu::f32_to_bf16(v[i]);
    std::memcpy(&s.bytes[i * 2], &h, 2);
    s.values[i] = kind == Dense::kF16 ? cpu::f16_to_f32(h) : cpu::bf16_to_f32(h);
  }
  return s;
}

// Blocks of random weights at several scales, then blocks built around the thresholds: one
// element is the block's absmax (1 after scaling, so y is the value itself), the rest sit on,
// just above and just below every threshold, positive and negative.
std::vector<float> tricky_weights(QuantType type) {
  std::vector<float> v = test::normal_values(64 * 40, 11);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] *= (i / 64) % 3 == 0 ? 1e-3f : ((i / 64) % 3 == 1 ? 0.02f : 7.0f);
  std::vector<float> edges;
  const float* thr =
      type == QuantType::kNf4 ? cpu::kNf4Thresholds.data() : cpu::kFp4Thresholds.data();
  const int count = type == QuantType::kNf4 ? 15 : 7;
  for (int i = 0; i < count; ++i) {
    for (float t : {thr[i], -thr[i]}) {
      edges.push_back(t);
      edges.push_back(std::nextafter(t, 2.0f));
      edges.push_back(std::nextafter(t, -2.0f));
    }
  }
  for (size_t start = 0; start < edges.size(); start += 63) {
    v.push_back(1.0f);  // the absmax: every other y is the stored value itself
    for (size_t k = start; k < start + 63; ++k) v.push_back(k < edges.size() ? edges[k] : 0.0f);
  }
  const float tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<float> specials = {0.0f,     -0.0f,     tiny,    -tiny,    1e-30f, -1e-30f,
                                       65504.0f, -65504.0f, 3.0e38f, -3.0e38f, 1.0f,   -1.0f};
  for (int b = 0; b < 4; ++b) {
    for (int k = 0; k < 64; ++k) {
      v.push_back(b == 0 ? 0.0f
                         : specials[static_cast<size_t>(k + b) % specials.size()] *
                               (b == 3 ? 1e-38f : 1.0f));
    }
  }
  return v;
}

TEST(BnbDenseKernels, QuantizeEqualsTheScalarReferenceBitForBitOnEveryIsa) {
  for (QuantType type : {QuantType::kNf4, QuantType::kFp4}) {
    const std::vector<float> w = tricky_weights(type);
    const int64_t blocks = static_cast<int64_t>(w.size()) / 64;
    for (Dense kind : {Dense::kF32, Dense::kF16, Dense::kBF16}) {
      std::vector<float> finite = w;  // F16 tops out at 65504; larger values would be Inf
      if (kind == Dense::kF16) {
        for (float& x : finite) x = std::max(-65504.0f, std::min(65504.0f, x));
      }
      const Stored s = store(finite, kind);
      // The oracle: the original float32 block quantizer on the values the bytes hold.
      std::vector<uint8_t> want_packed(static_cast<size_t>(blocks * 32));
      std::vector<float> want_absmax(static_cast<size_t>(blocks));
      cpu::quantize_blocks_4bit(type, s.values.data(), blocks * 64, 0, blocks, want_packed.data(),
                                want_absmax.data());
      for (Isa isa : isas_here()) {
        std::vector<uint8_t> packed(want_packed.size(), 0xAA);
        std::vector<float> absmax(want_absmax.size(), -1.0f);
        // Two ranges, the second starting mid-array, as parallel chunks would.
        EXPECT_EQ(cpu::quantize_dense_4bit(isa, type, kind, s.bytes.data(), 0, 7, packed.data(),
                                           absmax.data()),
                  7);
        EXPECT_EQ(cpu::quantize_dense_4bit(isa, type, kind, s.bytes.data(), 7, blocks,
                                           packed.data(), absmax.data()),
                  blocks);
        const std::string where = std::string(cpu::isa_name(isa)) + " " + dense_name(kind) +
                                  (type == QuantType::kNf4 ? " nf4" : " fp4");
        EXPECT_EQ(packed, want_packed) << where;
        ASSERT_EQ(std::memcmp(absmax.data(), want_absmax.data(), absmax.size() * 4), 0) << where;
      }
    }
  }
}

TEST(BnbDenseKernels, QuantizeStopsAtTheFirstBlockWithNanOrInfOnEveryIsa) {
  for (Dense kind : {Dense::kF32, Dense::kF16, Dense::kBF16}) {
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      std::vector<float> w = test::normal_values(64 * 9, 5);
      w[64 * 5 + 17] = bad;
      w[64 * 7 + 3] = bad;
      const Stored s = store(w, kind);
      for (Isa isa : isas_here()) {
        std::vector<uint8_t> packed(9 * 32);
        std::vector<float> absmax(9);
        EXPECT_EQ(cpu::quantize_dense_4bit(isa, QuantType::kNf4, kind, s.bytes.data(), 1, 9,
                                           packed.data(), absmax.data()),
                  5)
            << cpu::isa_name(isa) << " " << dense_name(kind) << " " << bad;
      }
    }
  }
}

// A 64-byte aligned buffer (streaming stores need the alignment).
struct Aligned {
  explicit Aligned(size_t bytes) : storage(bytes + 64) {
    auto p = reinterpret_cast<uintptr_t>(storage.data());
    data = storage.data() + ((64 - p % 64) % 64);
  }
  std::vector<uint8_t> storage;
  uint8_t* data = nullptr;
};

TEST(BnbDenseKernels, DequantizeEqualsTheScalarReferenceBitForBitOnEveryIsa) {
  const int64_t blocks = 48;
  const std::vector<float> w = test::normal_values(blocks * 64, 23);
  for (QuantType type : {QuantType::kNf4, QuantType::kFp4}) {
    std::vector<uint8_t> packed(static_cast<size_t>(blocks * 32));
    std::vector<float> absmax(static_cast<size_t>(blocks));
    cpu::quantize_blocks_4bit(type, w.data(), blocks * 64, 0, blocks, packed.data(), absmax.data());
    // Scales that overflow F16 / BF16, give subnormal results, are zero, or are NaN / Inf (a
    // corrupt checkpoint): the rounding and NaN rules must match too.
    absmax[1] = 0.0f;
    absmax[2] = 1e5f;
    absmax[3] = 3.0e38f;
    absmax[4] = 1e-6f;
    absmax[5] = 1e-41f;
    absmax[6] = std::numeric_limits<float>::quiet_NaN();
    absmax[7] = std::numeric_limits<float>::infinity();
    absmax[8] = -std::numeric_limits<float>::quiet_NaN();
    // NaNs with low payload bits: rounding them like numbers would carry into the result.
    const uint32_t payloads[2] = {0x7fc0ffffu, 0xffc1ffffu};
    std::memcpy(&absmax[9], &payloads[0], 4);
    std::memcpy(&absmax[10], &payloads[1], 4);
    cpu::Weight4 weight;
    weight.packed = packed.data();
    weight.code = cpu::codebook(type).data();
    weight.absmax.values = absmax.data();
    weight.out = blocks;
    weight.in = 64;
    // Double quantization reads the scales through the nested tables.
    std::vector<uint8_t> codes(static_cast<size_t>(blocks));
    std::vector<float> nested(1);
    std::vector<float> clean(static_cast<size_t>(blocks));
    for (int64_t b = 0; b < blocks; ++b) clean[static_cast<size_t>(b)] = 0.5f + 0.01f * b;
    cpu::Weight4 doubled = weight;
    doubled.absmax = cpu::Absmax();
    doubled.absmax.offset = cpu::double_quantize(clean.data(), blocks, codes.data(), nested.data());
    doubled.absmax.codes = codes.data();
    doubled.absmax.nested = nested.data();
    doubled.absmax.nested_map = cpu::dynamic_map().data();
    for (const cpu::Weight4* wt : {&weight, &doubled}) {
      for (Dense kind : {Dense::kF32, Dense::kF16, Dense::kBF16}) {
        const size_t size = kind == Dense::kF32 ? 4 : 2;
        std::vector<uint8_t> want(static_cast<size_t>(blocks * 64) * size);
        cpu::dequantize_dense_scalar(*wt, kind, 0, blocks, want.data());
        // The scalar dense path is itself checked against the float32 reference + rounding.
        std::vector<float> f(static_cast<size_t>(blocks * 64));
        cpu::dequantize_range(Isa::kScalar, *wt, 0, blocks * 64, f.data());
        for (size_t i = 0; i < f.size(); ++i) {
          if (kind == Dense::kF32) {
            ASSERT_EQ(std::memcmp(&want[i * 4], &f[i], 4), 0) << i;
          } else {
            const uint16_t h = kind == Dense::kF16 ? cpu::f32_to_f16(f[i]) : cpu::f32_to_bf16(f[i]);
            ASSERT_EQ(std::memcmp(&want[i * 2], &h, 2), 0) << i << " " << dense_name(kind);
          }
        }
        for (Isa isa : isas_here()) {
          for (bool stream : {false, true}) {
            Aligned got(want.size());
            std::memset(got.data, 0x5A, want.size());
            const size_t split = 64 * 5 * size;  // blocks [0, 5) then [5, blocks)
            cpu::dequantize_dense(isa, *wt, kind, 0, 5, got.data, stream);
            cpu::dequantize_dense(isa, *wt, kind, 5, blocks, got.data + split, stream);
            EXPECT_EQ(std::memcmp(got.data, want.data(), want.size()), 0)
                << cpu::isa_name(isa) << " " << dense_name(kind) << " stream " << stream
                << (wt == &doubled ? " double quant" : "");
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace qforge::plugins::bnb
