// GPTQ quantize (RTN with GPTQ's quantizer), pre-quantized checks, dequantize with act-order
// g_idx, v1 vs v2 and the CPU forward, through the quantizer class (FORMATS.md §2.4).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cpu/kernels.hpp"
#include "dense_tensor_io.hpp"  // plugins/common
#include "gptq_compute.hpp"
#include "gptq_quantizer.hpp"
#include "gptq_rtn.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::gptq {
namespace {

using qforge::test::f32;
using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

std::vector<int64_t> shape_of(const HostTensor& t) {
  return {t.get().shape, t.get().shape + t.get().ndim};
}

void fill(HostTensor& w, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  auto* p = w.data<float>();
  for (int64_t n = 0; n < w.numel(); ++n) p[n] = normal(rng);
}

class GptqQuantize : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }

  // Quantizes into a fresh tensor list (as a checkpoint hands it back).
  void quantize(GptqQuantizer& q, const Module& m, const DLTensor& w, TensorList& list) {
    TensorSink sink(host_);
    sdk::TensorSink handle(sink.get());
    q.quantize(sdk::Call(nullptr), m.get(), w, nullptr, nullptr, handle);
    for (const auto& [name, t] : sink.tensors()) {
      HostTensor& copy = list.add(name, t->get().dtype, shape_of(*t));
      std::memcpy(copy.data<unsigned char>(), t->get().data,
                  static_cast<size_t>(t->numel()) * ((t->get().dtype.bits + 7) / 8));
    }
  }
  std::vector<float> dequantize(GptqQuantizer& q, const Module& m, TensorList& list) {
    TensorSink dense(host_);
    sdk::TensorSink handle(dense.get());
    q.dequantize(sdk::Call(nullptr), m.get(), list.get(), handle);
    const HostTensor* w = dense.find("weight");
    EXPECT_NE(w, nullptr);
    const auto* p = static_cast<const float*>(w->get().data);
    return {p, p + w->numel()};
  }
  std::string check_error(GptqQuantizer& q, const Module& m, TensorList& list) {
    try {
      q.check_quantized(m.get(), list.get());
    } catch (const sdk::Error& e) {
      return std::string(e.what()) + " | " + e.why();
    }
    return "";
  }

  TestHost host_;
};

TEST_F(GptqQuantize, WritesTheTensorSetDescribeAnnounces) {
  GptqQuantizer q(R"({"bits":4,"group_size":64})");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 48, 192, false, f32());
  HostTensor w(f32(), {48, 192});
  fill(w, 1);
  TensorList list;
  quantize(q, m, w.get(), list);
  const nlohmann::json described = nlohmann::json::parse(q.describe_quantized(m.get()));
  ASSERT_EQ(described["tensors"].size(), 4u);
  for (const auto& t : described["tensors"]) {
    const DLTensor* got = sdk::find_tensor(&list.get(), t["name"].get<std::string>().c_str());
    ASSERT_NE(got, nullptr) << t.dump();
    EXPECT_EQ(sdk::dtype_name(got->dtype), t["dtype"].get<std::string>());
    EXPECT_EQ(std::vector<int64_t>(got->shape, got->shape + got->ndim),
              t["shape"].get<std::vector<int64_t>>());
  }
  // qweight [192*4/32, 48], qzeros [3, 48*4/32], scales [3, 48], g_idx [192].
  EXPECT_EQ(described["tensors"][0]["shape"], nlohmann::json::array({24, 48}));
  EXPECT_EQ(described["tensors"][1]["shape"], nlohmann::json::array({3, 6}));
  EXPECT_NO_THROW(q.check_quantized(m.get(), list.get()));
  const auto* g_idx = static_cast<const int32_t*>(sdk::find_tensor(&list.get(), "g_idx")->data);
  for (int64_t i = 0; i < 192; ++i) EXPECT_EQ(g_idx[i], i / 64);
}

TEST_F(GptqQuantize, SymmetricFourBitQzerosWordsAreSevensInV1AndEightsInV2) {
  for (const char* format : {"gptq", "gptq_v2"}) {
    GptqQuantizer q(std::string(R"({"bits":4,"sym":true,"checkpoint_format":")") + format + "\"}");
    Module m("model.layers.0.self_attn.q_proj", QF_MODULE_LINEAR, 64, 256, false, f32());
    HostTensor w(f32(), {64, 256});
    fill(w, 2);
    TensorList list;
    quantize(q, m, w.get(), list);
    const DLTensor* qz = sdk::find_tensor(&list.get(), "qzeros");
    ASSERT_NE(qz, nullptr);
    const auto* words = static_cast<const uint32_t*>(qz->data);
    const uint32_t expected = std::string(format) == "gptq" ? 0x77777777u : 0x88888888u;
    for (int64_t n = 0; n < sdk::numel(*qz); ++n) ASSERT_EQ(words[n], expected) << format;
  }
}

class GptqQuantizeBits : public GptqQuantize, public ::testing::WithParamInterface<int> {};

TEST_P(GptqQuantizeBits, DequantizeIsWithinHalfAStepOfTheWeight) {
  const int bits = GetParam();
  for (const char* sym : {"true", "false"}) {
    GptqQuantizer q("{\"bits\":" + std::to_string(bits) + ",\"group_size\":32,\"sym\":" + sym +
                    ",\"checkpoint_format\":\"gptq_v2\"}");
    Module m("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, 32, 128, false, f32());
    HostTensor w(f32(), {32, 128});
    fill(w, static_cast<unsigned>(bits));
    TensorList list;
    quantize(q, m, w.get(), list);
    const std::vector<float> d = dequantize(q, m, list);
    const std::vector<float> scales =
        read_floats(*sdk::find_tensor(&list.get(), "scales"), "scales");
    const auto* src = w.data<float>();
    for (int64_t o = 0; o < 32; ++o) {
      for (int64_t i = 0; i < 128; ++i) {
        const float s = scales[static_cast<size_t>((i / 32) * 32 + o)];
        // Half a step, plus the float16 rounding of the scale over at most 2^bits steps.
        const float tol = 0.5f * s + static_cast<float>(1 << bits) * s * 1e-3f;
        ASSERT_LE(std::fabs(d[static_cast<size_t>(o * 128 + i)] - src[o * 128 + i]), tol)
            << "bits " << bits << " sym " << sym << " at [" << o << ", " << i << "]";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Bits, GptqQuantizeBits, ::testing::Values(2, 3, 4, 8));

TEST(GptqRtn, QuantizerRangeRules) {
  // All-zero group: range [-1, 1]; sym zero (maxq + 1) / 2.
  const float zeros[4] = {0, 0, 0, 0};
  GroupParams p = find_params(zeros, 4, 1, 4, true);
  EXPECT_FLOAT_EQ(p.scale, 2.0f / 15.0f);
  EXPECT_FLOAT_EQ(p.zero, 8.0f);
  // All-positive group, asymmetric: the range includes 0, so zero is 0.
  const float pos[3] = {1.0f, 2.0f, 3.0f};
  p = find_params(pos, 3, 1, 4, false);
  EXPECT_FLOAT_EQ(p.scale, 3.0f / 15.0f);
  EXPECT_FLOAT_EQ(p.zero, 0.0f);
  // Symmetric: max(|min|, max) both ways.
  const float mixed[2] = {-3.0f, 1.0f};
  p = find_params(mixed, 2, 1, 4, true);
  EXPECT_FLOAT_EQ(p.scale, 6.0f / 15.0f);
  EXPECT_EQ(quantize_code(-3.0f, p, 15), 0);  // round(-7.5) = -8 (half to even) + 8
  EXPECT_EQ(quantize_code(100.0f, p, 15), 15);
}

TEST_F(GptqQuantize, V1CodesAZeroPointOfZeroAsOne) {
  GptqConfig v1 = parse_gptq_config(R"({"bits":4,"group_size":-1,"sym":false})");
  std::vector<float> w(32, 0.5f);  // one row, all positive: zero would be 0
  int64_t clamped = 0;
  const Unpacked u = quantize_rtn(w.data(), 1, 32, v1, {}, &clamped);
  EXPECT_EQ(clamped, 1);
  EXPECT_EQ(u.zeros[0], 1);
  GptqConfig v2 = parse_gptq_config(R"({"bits":4,"group_size":-1,"sym":false,"format":"gptq_v2"})");
  EXPECT_EQ(quantize_rtn(w.data(), 1, 32, v2, {}, &clamped).zeros[0], 0);
  EXPECT_EQ(clamped, 0);
}

TEST_F(GptqQuantize, ActOrderGidxIsAValidMappingAndDequantizesUnpermuted) {
  const int64_t out = 32, in = 128, gs = 32;
  const GptqConfig config = parse_gptq_config(R"({"bits":4,"group_size":32,"desc_act":true})");
  HostTensor w(f32(), {out, in});
  fill(w, 7);
  std::vector<int64_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(3));
  const Unpacked layer = quantize_rtn(w.data<float>(), out, in, config, perm);
  // Valid mapping: every group holds exactly group_size inputs, and not in natural order.
  std::vector<int> count(static_cast<size_t>(in / gs), 0);
  bool natural = true;
  for (int64_t i = 0; i < in; ++i) {
    ASSERT_GE(layer.g_idx[static_cast<size_t>(i)], 0);
    ASSERT_LT(layer.g_idx[static_cast<size_t>(i)], in / gs);
    ++count[static_cast<size_t>(layer.g_idx[static_cast<size_t>(i)])];
    natural = natural && layer.g_idx[static_cast<size_t>(i)] == i / gs;
  }
  for (int c : count) EXPECT_EQ(c, gs);
  EXPECT_FALSE(natural);
  TensorSink sink(host_);
  sdk::TensorSink handle(sink.get());
  write_checkpoint(layer, config, handle);
  TensorList list;
  for (const auto& [name, t] : sink.tensors()) {
    HostTensor& copy = list.add(name, t->get().dtype, shape_of(*t));
    std::memcpy(copy.data<unsigned char>(), t->get().data,
                static_cast<size_t>(t->numel()) * ((t->get().dtype.bits + 7) / 8));
  }
  GptqQuantizer q(R"({"bits":4,"group_size":32,"desc_act":true})");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, out, in, false, f32());
  const std::vector<float> got = dequantize(q, m, list);
  // Reference: the permuted matrix quantized in natural order, dequantized, then un-permuted.
  std::vector<float> wp(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t j = 0; j < in; ++j) {
      wp[static_cast<size_t>(o * in + j)] = w.data<float>()[o * in + perm[static_cast<size_t>(j)]];
    }
  }
  const Unpacked ref = quantize_rtn(wp.data(), out, in, config, {});
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t j = 0; j < in; ++j) {
      const int64_t g = j / gs;
      const float s = half_to_float(float_to_half(ref.scales[static_cast<size_t>(g * out + o)]));
      const float expect = s * static_cast<float>(ref.codes[static_cast<size_t>(j * out + o)] -
                                                  ref.zeros[static_cast<size_t>(g * out + o)]);
      ASSERT_EQ(got[static_cast<size_t>(o * in + perm[static_cast<size_t>(j)])], expect)
          << o << ", " << j;
    }
  }
}

TEST_F(GptqQuantize, BadPreQuantizedTensorsGetTheirOwnErrors) {
  GptqQuantizer q(R"({"bits":4,"group_size":64})");
  Module m("model.layers.3.mlp.gate_proj", QF_MODULE_LINEAR, 32, 128, false, f32());
  HostTensor w(f32(), {32, 128});
  fill(w, 4);
  {
    TensorList list;
    quantize(q, m, w.get(), list);
    auto* g_idx = const_cast<int32_t*>(
        static_cast<const int32_t*>(sdk::find_tensor(&list.get(), "g_idx")->data));
    g_idx[5] = 2;  // groups are 0 and 1
    const std::string e = check_error(q, m, list);
    EXPECT_NE(e.find("g_idx' is out of range: g_idx[5] = 2"), std::string::npos) << e;
  }
  {
    TensorList list;
    quantize(q, m, w.get(), list);
    list.remove("qweight");
    list.add("qweight", sdk::make_dtype(kDLInt, 32), {8, 32});  // 2-bit rows
    const std::string e = check_error(q, m, list);
    EXPECT_NE(e.find("has 8 rows, expected 16"), std::string::npos) << e;
    EXPECT_NE(e.find("fits 2-bit packing"), std::string::npos) << e;
  }
  {
    TensorList list;
    quantize(q, m, w.get(), list);
    list.remove("g_idx");
    EXPECT_NE(check_error(q, m, list).find("'g_idx' is missing"), std::string::npos);
  }
  {
    TensorList list;
    quantize(q, m, w.get(), list);
    list.remove("qzeros");
    list.add("qzeros", sdk::make_dtype(kDLInt, 32), {1, 4});
    EXPECT_NE(check_error(q, m, list).find("'qzeros' has shape [1, 4]"), std::string::npos);
  }
}

TEST_F(GptqQuantize, FormatKeyDecidesHowQzerosRead) {
  GptqQuantizer v1(R"({"bits":4,"group_size":64,"sym":false})");
  GptqQuantizer v2(R"({"bits":4,"group_size":64,"sym":false,"checkpoint_format":"gptq_v2"})");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 16, 64, false, f32());
  HostTensor w(f32(), {16, 64});
  fill(w, 5);
  TensorList list;
  quantize(v1, m, w.get(), list);
  const std::vector<float> as_v1 = dequantize(v1, m, list);
  const std::vector<float> as_v2 = dequantize(v2, m, list);
  const std::vector<float> scales = read_floats(*sdk::find_tensor(&list.get(), "scales"), "s");
  // Read as v2, every zero is one less: every weight is one scale more.
  for (int64_t o = 0; o < 16; ++o) {
    for (int64_t i = 0; i < 64; ++i) {
      const size_t n = static_cast<size_t>(o * 64 + i);
      EXPECT_FLOAT_EQ(as_v2[n] - as_v1[n], scales[static_cast<size_t>(o)]);
    }
  }
}

TEST_F(GptqQuantize, SkipsShapesThatDoNotPackWithTheReason) {
  GptqQuantizer q(R"({"bits":4,"group_size":128})");
  std::string reason;
  Module odd("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 64, 100);
  EXPECT_FALSE(q.needs_quantization(odd.get(), reason));
  EXPECT_NE(reason.find("in_features 100 is not a multiple of 8"), std::string::npos) << reason;
  // A last group shorter than group_size packs (G = ceil(I / group_size)).
  Module ragged("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 64, 192);
  EXPECT_TRUE(q.needs_quantization(ragged.get(), reason)) << reason;
  Module three("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 48, 256);
  GptqQuantizer q3(R"({"bits":3,"group_size":128})");
  EXPECT_FALSE(q3.needs_quantization(three.get(), reason));
  EXPECT_NE(reason.find("out_features 48 is not a multiple of 32"), std::string::npos) << reason;
  Module fine("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 64, 256);
  EXPECT_TRUE(q.needs_quantization(fine.get(), reason));
}

TEST_F(GptqQuantize, ForwardEqualsXTimesDequantizedWeight) {
  GptqQuantizer q(R"({"bits":4,"group_size":32,"sym":false})");
  const int64_t out = 72, in = 96, tokens = 3;  // 72: a vector tail on the output lanes
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, out, in, true, f32());
  HostTensor w(f32(), {out, in});
  fill(w, 6);
  TensorList list;
  quantize(q, m, w.get(), list);
  const std::vector<float> d = dequantize(q, m, list);
  HostTensor x(f32(), {tokens, in}), bias(f32(), {out}), y(f32(), {tokens, out});
  fill(x, 8);
  fill(bias, 9);
  q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), x.get(), &bias.get(), y.get());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t o = 0; o < out; ++o) {
      double ref = bias.data<float>()[o];
      for (int64_t i = 0; i < in; ++i) {
        ref +=
            static_cast<double>(x.data<float>()[t * in + i]) * d[static_cast<size_t>(o * in + i)];
      }
      EXPECT_NEAR(y.data<float>()[t * out + o], ref, 1e-5) << t << ", " << o;
    }
  }
}

// Every vector ISA against the scalar oracle, bit for bit. The output range [3, 143) of 150
// leaves full 64/32/16-lane blocks and a 12-lane tail; 1..7 tokens cover the GEMV path, the
// four-token GEMM blocks and their remainders. An ISA this CPU lacks is skipped, not passed.
class GptqKernels : public ::testing::TestWithParam<cpu::Isa> {};

TEST_P(GptqKernels, EqualsScalarBitForBit) {
  const cpu::Isa isa = GetParam();
  if (!cpu::isa_supported(isa)) {
    GTEST_SKIP() << "this CPU has no " << cpu::isa_name(isa) << " (compiled, not run)";
  }
  for (int bits : {2, 3, 4, 8}) {
    const int64_t in = 64, out = 150, groups = 2, o0 = 3, o1 = 143, ldw = o1 - o0;
    std::mt19937 rng(static_cast<unsigned>(bits));
    std::vector<int32_t> qweight(static_cast<size_t>(in * bits / 32 * out));
    for (auto& v : qweight) v = static_cast<int32_t>(rng());
    std::vector<int32_t> zeros(static_cast<size_t>(groups * out));
    for (auto& z : zeros) z = static_cast<int32_t>(rng() % (1u << bits));
    std::vector<float> scales(static_cast<size_t>(groups * out));
    for (auto& s : scales) s = 0.001f * static_cast<float>(1 + rng() % 100);
    std::vector<int32_t> g_idx(static_cast<size_t>(in));
    for (auto& g : g_idx) g = static_cast<int32_t>(rng() % groups);
    const cpu::PackedMatrix m{qweight.data(), in,          out, bits, zeros.data(),
                              scales.data(),  g_idx.data()};
    // Sentinels after each row show a store past o1 - o0.
    std::vector<float> a(static_cast<size_t>(in * (ldw + 1)), -7.0f), b(a.size(), -7.0f);
    cpu::dequantize_block(cpu::Isa::kScalar, m, 0, in, o0, o1, a.data(), ldw + 1);
    cpu::dequantize_block(isa, m, 0, in, o0, o1, b.data(), ldw + 1);
    ASSERT_EQ(a, b) << bits;
    for (int64_t tokens = 1; tokens <= 7; ++tokens) {
      std::vector<float> x(static_cast<size_t>(tokens * in));
      for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
      std::vector<float> ya(static_cast<size_t>(tokens * out), 0.25f), yb = ya;
      cpu::accumulate(cpu::Isa::kScalar, a.data(), in, ldw + 1, x.data(), in, tokens, o0, o1,
                      ya.data(), out);
      cpu::accumulate(isa, a.data(), in, ldw + 1, x.data(), in, tokens, o0, o1, yb.data(), out);
      ASSERT_EQ(ya, yb) << bits << " bits, " << tokens << " tokens";
    }
    // The fused one-token GEMV, over two input ranges in turn as the forward calls it.
    std::vector<float> x(static_cast<size_t>(in));
    for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
    std::vector<float> ya(static_cast<size_t>(out), 0.25f), yb = ya;
    cpu::accumulate(cpu::Isa::kScalar, a.data(), in, ldw + 1, x.data(), in, 1, o0, o1, ya.data(),
                    out);
    cpu::gemv(isa, m, 0, 24, x.data(), o0, o1, yb.data());
    cpu::gemv(isa, m, 24, in, x.data(), o0, o1, yb.data());
    ASSERT_EQ(ya, yb) << bits << " bits, fused gemv";
  }
}

// The scalar fused GEMV is the block path's bits (dequantize_block, then accumulate).
TEST(GptqGemv, ScalarEqualsDequantizeThenAccumulate) {
  for (int bits : {2, 3, 4, 8}) {
    const int64_t in = 96, out = 64, groups = 3;
    std::mt19937 rng(static_cast<unsigned>(100 + bits));
    std::vector<int32_t> qweight(static_cast<size_t>(in * bits / 32 * out));
    for (auto& v : qweight) v = static_cast<int32_t>(rng());
    std::vector<int32_t> zeros(static_cast<size_t>(groups * out));
    for (auto& z : zeros) z = static_cast<int32_t>(rng() % (1u << bits));
    std::vector<float> scales(static_cast<size_t>(groups * out));
    for (auto& s : scales) s = 0.001f * static_cast<float>(1 + rng() % 100);
    std::vector<int32_t> g_idx(static_cast<size_t>(in));
    for (auto& g : g_idx) g = static_cast<int32_t>(rng() % groups);  // act-order-like
    const cpu::PackedMatrix m{qweight.data(), in,          out, bits, zeros.data(),
                              scales.data(),  g_idx.data()};
    std::vector<float> block(static_cast<size_t>(in * out));
    cpu::dequantize_block(cpu::Isa::kScalar, m, 0, in, 0, out, block.data(), out);
    std::vector<float> x(static_cast<size_t>(in));
    for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
    std::vector<float> ya(static_cast<size_t>(out), -0.5f), yb = ya;
    cpu::accumulate(cpu::Isa::kScalar, block.data(), in, out, x.data(), in, 1, 0, out, ya.data(),
                    out);
    cpu::gemv(cpu::Isa::kScalar, m, 0, in, x.data(), 0, out, yb.data());
    ASSERT_EQ(ya, yb) << bits;
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, GptqKernels, ::testing::Values(cpu::Isa::kAvx2, cpu::Isa::kAvx512),
                         [](const ::testing::TestParamInfo<cpu::Isa>& p) {
                           return std::string(cpu::isa_name(p.param));
                         });

// The forward through the quantizer gives the same bits whatever ISA QFORGE_GPTQ_KERNEL forces
// (320 inputs: two input blocks).
TEST_F(GptqQuantize, ForwardSameBitsOnEveryIsa) {
  GptqQuantizer q(R"({"bits":4,"group_size":32,"sym":false})");
  const int64_t out = 136, in = 320;
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, out, in, false, f32());
  HostTensor w(f32(), {out, in});
  fill(w, 16);
  TensorList list;
  quantize(q, m, w.get(), list);
  int compared = 0;
  // 1 token: the fused GEMV; 5: a GEMM block and a remainder.
  for (int64_t tokens : {1, 5}) {
    HostTensor x(f32(), {tokens, in});
    fill(x, 17);
    const auto forward = [&](cpu::Isa isa) {
      ::setenv("QFORGE_GPTQ_KERNEL", cpu::isa_name(isa), 1);
      HostTensor y(f32(), {tokens, out});
      q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), x.get(), nullptr, y.get());
      ::unsetenv("QFORGE_GPTQ_KERNEL");
      return std::vector<float>(y.data<float>(), y.data<float>() + tokens * out);
    };
    const std::vector<float> reference = forward(cpu::Isa::kScalar);
    for (cpu::Isa isa : {cpu::Isa::kAvx2, cpu::Isa::kAvx512}) {
      if (!cpu::isa_supported(isa)) continue;
      EXPECT_EQ(forward(isa), reference) << cpu::isa_name(isa) << ", " << tokens << " tokens";
      ++compared;
    }
  }
  if (compared == 0) GTEST_SKIP() << "this CPU has no vector ISA to compare with scalar";
}

}  // namespace
}  // namespace qforge::plugins::gptq
