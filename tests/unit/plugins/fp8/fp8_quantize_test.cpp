// Fine-grained FP8 quantize, dequantize, checks and forward through the quantizer class
// (FORMATS.md §2.6): tensor set, tile scales, all-zero and ragged tiles, NaN/Inf refusal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cpu/e4m3.hpp"
#include "fp8_quantizer.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::fp8 {
namespace {

using qforge::test::f32;
using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

DLDataType e4m3() { return sdk::make_dtype(QF_DL_FLOAT8_E4M3FN, 8); }

std::vector<int64_t> shape_of(const HostTensor& t) {
  return {t.get().shape, t.get().shape + t.get().ndim};
}

// 1 + a distinct small integer per 128x128 tile.
int64_t tile_index(int64_t r, int64_t c) { return 1 + ((r / 128) * 7) + ((c / 128) * 3); }

// Random weights whose magnitude differs per 128x128 tile, so a wrong tile index shows.
void fill_weights(HostTensor& w, int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto* p = w.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float tile_gain = 0.01f * static_cast<float>(tile_index(r, c));
      p[r * cols + c] = normal(rng) * tile_gain;
    }
  }
}

class Fp8Quantize : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }

  void quantize(Fp8Quantizer& q, const Module& m, const DLTensor& w) {
    q.quantize(sdk::Call(nullptr), m.get(), w, nullptr, nullptr, sink_handle_);
  }
  // The error what() of quantize, "" if it succeeded.
  std::string quantize_error(Fp8Quantizer& q, const Module& m, const DLTensor& w) {
    TensorSink sink(host_);
    sdk::TensorSink handle(sink.get());
    try {
      q.quantize(sdk::Call(nullptr), m.get(), w, nullptr, nullptr, handle);
    } catch (const sdk::Error& e) {
      return e.what();
    }
    return "";
  }
  // Copies sink_'s outputs into a tensor list (as the host hands a checkpoint back).
  void copy_outputs(TensorList& list) {
    for (const auto& [name, t] : sink_.tensors()) {
      HostTensor& copy = list.add(name, t->get().dtype, shape_of(*t));
      const size_t bytes = static_cast<size_t>(t->numel()) * ((t->get().dtype.bits + 7) / 8);
      std::memcpy(copy.data<unsigned char>(), t->get().data, bytes);
    }
  }
  std::vector<float> dequantize(Fp8Quantizer& q, const Module& m, TensorList& list) {
    TensorSink dense(host_);
    sdk::TensorSink handle(dense.get());
    q.dequantize(sdk::Call(nullptr), m.get(), list.get(), handle);
    const HostTensor* w = dense.find("weight");
    EXPECT_NE(w, nullptr);
    EXPECT_TRUE(sdk::same_dtype(w->get().dtype, f32()));
    const auto* p = static_cast<const float*>(w->get().data);
    return {p, p + w->numel()};
  }

  TestHost host_;
  TensorSink sink_{host_};
  sdk::TensorSink sink_handle_{sink_.get()};
};

TEST_F(Fp8Quantize, WritesTheTensorSetDescribeQuantizedAnnounces) {
  Fp8Quantizer q(R"({"quant_method":"fp8"})");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 256, 384, false, f32());
  HostTensor w(f32(), {256, 384});
  fill_weights(w, 256, 384, 1);
  quantize(q, m, w.get());
  const nlohmann::json described = nlohmann::json::parse(q.describe_quantized(m.get()));
  ASSERT_EQ(described["tensors"].size(), sink_.tensors().size());
  for (const auto& t : described["tensors"]) {
    const HostTensor* got = sink_.find(t["name"].get<std::string>());
    ASSERT_NE(got, nullptr) << t.dump();
    EXPECT_EQ(sdk::dtype_name(got->get().dtype), t["dtype"].get<std::string>());
    EXPECT_EQ(shape_of(*got), t["shape"].get<std::vector<int64_t>>());
  }
  // FORMATS.md §2.6: weight F8_E4M3 [O, I], weight_scale_inv F32 [ceil(O/128), ceil(I/128)].
  EXPECT_EQ(described["tensors"][0],
            nlohmann::json::parse(R"({"name":"weight","dtype":"F8_E4M3","shape":[256,384]})"));
  EXPECT_EQ(described["tensors"][1],
            nlohmann::json::parse(R"({"name":"weight_scale_inv","dtype":"F32","shape":[2,3]})"));
  EXPECT_NE(described["kernels"]["cpu"].get<std::string>().find("emulation"), std::string::npos);
}

TEST_F(Fp8Quantize, TileScalesAndCodesFollowTransformersArithmetic) {
  Fp8Quantizer q("{}");
  Module m("proj", QF_MODULE_LINEAR, 256, 256, false, f32());
  HostTensor w(f32(), {256, 256});
  fill_weights(w, 256, 256, 2);
  quantize(q, m, w.get());
  const float* wp = w.data<float>();
  const float* inv = static_cast<const float*>(sink_.find("weight_scale_inv")->get().data);
  const auto* codes = static_cast<const uint8_t*>(sink_.find("weight")->get().data);
  for (int tr = 0; tr < 2; ++tr) {
    for (int tc = 0; tc < 2; ++tc) {
      float amax = 0.0f;
      for (int r = tr * 128; r < tr * 128 + 128; ++r)
        for (int c = tc * 128; c < tc * 128 + 128; ++c)
          amax = std::max(amax, std::fabs(wp[r * 256 + c]));
      const float scale = 448.0f / amax;
      EXPECT_EQ(inv[tr * 2 + tc], 1.0f / scale) << tr << "," << tc;
      for (int r = tr * 128; r < tr * 128 + 128; ++r) {
        for (int c = tc * 128; c < tc * 128 + 128; ++c) {
          ASSERT_EQ(codes[r * 256 + c], cpu::e4m3_from_float(wp[r * 256 + c] * scale))
              << r << "," << c;
        }
      }
    }
  }
  // The largest magnitude of each tile lands on +-448 exactly.
  int at_max = 0;
  for (int i = 0; i < 256 * 256; ++i) at_max += (codes[i] & 0x7F) == cpu::kE4m3MaxCode ? 1 : 0;
  EXPECT_GE(at_max, 4);
}

TEST_F(Fp8Quantize, DequantizeRestoresWeightsWithinE4m3Precision) {
  Fp8Quantizer q("{}");
  Module m("proj", QF_MODULE_LINEAR, 256, 384, false, f32());
  HostTensor w(f32(), {256, 384});
  fill_weights(w, 256, 384, 3);
  quantize(q, m, w.get());
  TensorList list;
  copy_outputs(list);
  q.check_quantized(m.get(), list.get());
  const std::vector<float> back = dequantize(q, m, list);
  const float* inv = static_cast<const float*>(sink_.find("weight_scale_inv")->get().data);
  double max_rel = 0.0;
  for (int64_t r = 0; r < 256; ++r) {
    for (int64_t c = 0; c < 384; ++c) {
      const float x = w.data<float>()[r * 384 + c];
      const float s = inv[(r / 128) * 3 + c / 128];
      // Half a step of 3 mantissa bits (2^-4 relative), or half the subnormal step 2^-10 * s.
      const float bound = std::max(std::fabs(x) * 0.0625f, s * std::ldexp(1.0f, -10)) * 1.0001f;
      ASSERT_LE(std::fabs(back[static_cast<size_t>(r * 384 + c)] - x), bound) << r << "," << c;
      if (std::fabs(x) > 0.1f * 448.0f * s)
        max_rel = std::max(
            max_rel, static_cast<double>(std::fabs(back[static_cast<size_t>(r * 384 + c)] - x) /
                                         std::fabs(x)));
    }
  }
  EXPECT_GT(max_rel, 0.0);  // it did quantize
}

TEST_F(Fp8Quantize, AllZeroTileGetsScaleOneAndZeroCodes) {
  Fp8Quantizer q("{}");
  Module m("proj", QF_MODULE_LINEAR, 256, 128, false, f32());
  HostTensor w(f32(), {256, 128});
  for (int i = 0; i < 128 * 128; ++i) w.data<float>()[i] = 0.5f;  // tile (0,0); tile (1,0) zero
  w.data<float>()[5] = -0.0f;
  quantize(q, m, w.get());
  const float* inv = static_cast<const float*>(sink_.find("weight_scale_inv")->get().data);
  EXPECT_EQ(inv[0], 0.5f / 448.0f);
  EXPECT_EQ(inv[1], 1.0f);
  const auto* codes = static_cast<const uint8_t*>(sink_.find("weight")->get().data);
  for (int i = 128 * 128; i < 256 * 128; ++i) ASSERT_EQ(codes[i], 0) << i;
  EXPECT_EQ(codes[0], cpu::kE4m3MaxCode);
}

TEST_F(Fp8Quantize, PerTensorWhenBlockSizeIsNull) {
  Fp8Quantizer q(R"({"weight_block_size":null})");
  Module m("proj", QF_MODULE_LINEAR, 100, 70, false, f32());  // any shape is divisible
  HostTensor w(f32(), {100, 70});
  fill_weights(w, 100, 70, 4);
  w.data<float>()[1234] = 3.0f;
  quantize(q, m, w.get());
  const HostTensor* s = sink_.find("weight_scale_inv");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->get().ndim, 0);
  EXPECT_EQ(*static_cast<const float*>(s->get().data), 1.0f / (448.0f / 3.0f));
  EXPECT_EQ(nlohmann::json::parse(q.describe_quantized(m.get()))["tensors"][1]["shape"],
            nlohmann::json::array());
}

TEST_F(Fp8Quantize, RefusesDimensionsNotDivisibleByTheBlockWithTransformersText) {
  Fp8Quantizer q("{}");
  Module m("model.layers.0.self_attn.kv_a_proj_with_mqa", QF_MODULE_LINEAR, 576, 200, false, f32());
  HostTensor w(f32(), {576, 200});
  const std::string err = quantize_error(q, m, w.get());
  EXPECT_NE(err.find("Matrix dimensions (576, 200) must be divisible by block sizes (128, 128)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("kv_a_proj_with_mqa"), std::string::npos);
}

TEST_F(Fp8Quantize, RefusesNanAndInfNamingTensorAndTile) {
  Fp8Quantizer q("{}");
  Module m("model.layers.3.mlp.down_proj", QF_MODULE_LINEAR, 256, 256, false, f32());
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    HostTensor w(f32(), {256, 256});
    w.data<float>()[200 * 256 + 130] = bad;  // tile (1, 1)
    const std::string err = quantize_error(q, m, w.get());
    EXPECT_NE(err.find("model.layers.3.mlp.down_proj"), std::string::npos) << err;
    EXPECT_NE(err.find(std::isnan(bad) ? "NaN" : "Inf"), std::string::npos) << err;
    EXPECT_NE(err.find("[200, 130]"), std::string::npos) << err;
    EXPECT_NE(err.find("tile (1, 1)"), std::string::npos) << err;
  }
}

TEST_F(Fp8Quantize, StaticActivationsCannotBeQuantizedOnTheFly) {
  Fp8Quantizer q(R"({"activation_scheme":"static"})");
  Module m("proj", QF_MODULE_LINEAR, 128, 128, false, f32());
  HostTensor w(f32(), {128, 128});
  EXPECT_NE(quantize_error(q, m, w.get()).find("static"), std::string::npos);
  const nlohmann::json d = nlohmann::json::parse(q.describe_quantized(m.get()));
  ASSERT_EQ(d["tensors"].size(), 3u);
  EXPECT_EQ(d["tensors"][2]["name"], "activation_scale");
}

// A DeepSeek-V3-style pre-quantized module whose dimensions are not multiples of 128
// (kv_a_proj_with_mqa-like): scales ceil-divided, last tiles ragged.
class Fp8RaggedLoad : public Fp8Quantize {
 protected:
  static constexpr int64_t kRows = 130, kCols = 200;  // tiles 2 x 2, ragged in both
  static void fill(TensorList& list) {
    HostTensor& q = list.add("weight", e4m3(), {kRows, kCols});
    HostTensor& s = list.add("weight_scale_inv", f32(), {2, 2});
    for (int64_t i = 0; i < kRows * kCols; ++i)
      q.data<uint8_t>()[i] = static_cast<uint8_t>(i % 254 == 0x7F ? 0 : i % 254);
    const float scales[4] = {0.5f, 0.25f, 2.0f, 0.125f};
    std::memcpy(s.data<float>(), scales, sizeof scales);
  }
};

TEST_F(Fp8RaggedLoad, ChecksAndDequantizesWithCeilDividedScales) {
  Fp8Quantizer q("{}");
  Module m("model.layers.0.self_attn.kv_a_proj_with_mqa", QF_MODULE_LINEAR, kRows, kCols, false,
           f32());
  TensorList list;
  fill(list);
  q.check_quantized(m.get(), list.get());
  const std::vector<float> w = dequantize(q, m, list);
  const float scales[4] = {0.5f, 0.25f, 2.0f, 0.125f};
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t c = 0; c < kCols; ++c) {
      const auto code =
          static_cast<uint8_t>((r * kCols + c) % 254 == 0x7F ? 0 : (r * kCols + c) % 254);
      const float expected =
          cpu::e4m3_to_float(code) * scales[(r >= 128 ? 2 : 0) + (c >= 128 ? 1 : 0)];
      ASSERT_EQ(w[static_cast<size_t>(r * kCols + c)], expected) << r << "," << c;
    }
  }
}

TEST_F(Fp8RaggedLoad, CheckRefusesWrongScaleShapeAndDtypeAndMissingTensors) {
  Fp8Quantizer q("{}");
  Module m("proj", QF_MODULE_LINEAR, kRows, kCols, false, f32());
  auto check_error = [&](TensorList& list) -> std::string {
    try {
      q.check_quantized(m.get(), list.get());
    } catch (const sdk::Error& e) {
      return e.what() + std::string(" | ") + e.why();
    }
    return "";
  };
  TensorList floor_divided;
  floor_divided.add("weight", e4m3(), {kRows, kCols});
  floor_divided.add("weight_scale_inv", f32(), {1, 1});
  EXPECT_NE(check_error(floor_divided).find("expected [2, 2]"), std::string::npos);
  TensorList wrong_dtype;
  wrong_dtype.add("weight", qforge::test::u8(), {kRows, kCols});
  wrong_dtype.add("weight_scale_inv", f32(), {2, 2});
  EXPECT_NE(check_error(wrong_dtype).find("F8_E4M3"), std::string::npos);
  TensorList missing;
  missing.add("weight", e4m3(), {kRows, kCols});
  EXPECT_NE(check_error(missing).find("weight_scale_inv' is missing"), std::string::npos);
}

TEST_F(Fp8Quantize, NeedsQuantizationSkipsListedAndNonLinearModules) {
  Fp8Quantizer q(R"({"modules_to_not_convert":["lm_head","model.layers.1"]})");
  std::string why;
  Module head("lm_head", QF_MODULE_LINEAR, 128, 128);
  EXPECT_FALSE(q.needs_quantization(head.get(), why));
  EXPECT_NE(why.find("modules_to_not_convert"), std::string::npos);
  Module l1("model.layers.1.mlp.up_proj", QF_MODULE_LINEAR, 128, 128);
  EXPECT_FALSE(q.needs_quantization(l1.get(), why));
  Module l10("model.layers.10.mlp.up_proj", QF_MODULE_LINEAR, 128, 128);
  EXPECT_TRUE(q.needs_quantization(l10.get(), why));
  Module conv("transformer.h.0.attn.c_attn", QF_MODULE_CONV1D, 128, 128);
  EXPECT_FALSE(q.needs_quantization(conv.get(), why));
}

// Reference forward, written independently of fp8_compute.cpp: dequantized weight, activations
// rounded per token per 128-channel group (s = amax / 448), fp32 dot products.
std::vector<float> reference_forward(const std::vector<float>& w, const std::vector<float>& x,
                                     int64_t tokens, int64_t in, int64_t out) {
  std::vector<float> xq(x);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t g = 0; g < in; g += 128) {
      float amax = 0.0f;
      for (int64_t i = g; i < std::min(in, g + 128); ++i)
        amax = std::max(amax, std::fabs(x[t * in + i]));
      if (amax == 0.0f) continue;
      const float s = amax / 448.0f;
      for (int64_t i = g; i < std::min(in, g + 128); ++i)
        xq[t * in + i] = cpu::e4m3_to_float(cpu::e4m3_from_float(x[t * in + i] / s)) * s;
    }
  }
  std::vector<float> y(static_cast<size_t>(tokens * out));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t o = 0; o < out; ++o) {
      float acc = 0.0f;
      for (int64_t i = 0; i < in; ++i) acc += xq[t * in + i] * w[o * in + i];
      y[t * out + o] = acc;
    }
  return y;
}

TEST_F(Fp8Quantize, LinearForwardEmulatesDynamicActivationQuantization) {
  Fp8Quantizer q("{}");
  const int64_t out = 128;
  const int64_t in = 256;
  const int64_t tokens = 3;
  Module m("proj", QF_MODULE_LINEAR, out, in, true, f32());
  HostTensor w(f32(), {out, in});
  fill_weights(w, out, in, 5);
  quantize(q, m, w.get());
  TensorList list;
  copy_outputs(list);
  const std::vector<float> wd = dequantize(q, m, list);
  HostTensor x(f32(), {tokens, in});
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (int64_t i = 0; i < tokens * in; ++i) x.data<float>()[i] = u(rng);
  for (int64_t i = 0; i < 128; ++i) x.data<float>()[2 * in + i] = 0.0f;  // an all-zero group
  HostTensor bias(f32(), {out});
  for (int64_t o = 0; o < out; ++o) bias.data<float>()[o] = 0.01f * static_cast<float>(o);
  HostTensor y(f32(), {tokens, out});
  q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), x.get(), &bias.get(), y.get());
  const std::vector<float> xs(x.data<float>(), x.data<float>() + tokens * in);
  const std::vector<float> ref = reference_forward(wd, xs, tokens, in, out);
  double diff_plain = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t o = 0; o < out; ++o) {
      const float got = y.data<float>()[t * out + o];
      ASSERT_TRUE(std::isfinite(got));
      EXPECT_EQ(got, ref[static_cast<size_t>(t * out + o)] + bias.data<float>()[o])
          << t << "," << o;
      float plain = 0.0f;
      for (int64_t i = 0; i < in; ++i)
        plain += xs[static_cast<size_t>(t * in + i)] * wd[static_cast<size_t>(o * in + i)];
      diff_plain =
          std::max(diff_plain, static_cast<double>(std::fabs(plain + bias.data<float>()[o] - got)));
    }
  }
  EXPECT_GT(diff_plain, 0.0);  // activations really went through e4m3
}

TEST_F(Fp8Quantize, LinearForwardUsesTheStaticActivationScale) {
  Fp8Quantizer q(R"({"activation_scheme":"static"})");
  Module m("proj", QF_MODULE_LINEAR, 1, 128, false, f32());
  TensorList list;
  HostTensor& qw = list.add("weight", e4m3(), {1, 128});
  list.add("weight_scale_inv", f32(), {1, 1}).data<float>()[0] = 1.0f;
  list.add("activation_scale", f32(), {}).data<float>()[0] = 0.5f;
  qw.data<uint8_t>()[0] = cpu::e4m3_from_float(1.0f);
  HostTensor x(f32(), {1, 128});
  x.data<float>()[0] = 300.0f;  // 300 / 0.5 = 600 saturates to 448 -> 224
  HostTensor y(f32(), {1, 1});
  q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), x.get(), nullptr, y.get());
  EXPECT_EQ(y.data<float>()[0], 224.0f);
}

}  // namespace
}  // namespace qforge::plugins::fp8

namespace qforge::plugins::fp8 {
namespace {

TEST_F(Fp8Quantize, ResultsDoNotDependOnTheThreadSplit) {
  Fp8Quantizer q("{}");
  Module m("proj", QF_MODULE_LINEAR, 256, 128, false, f32());
  HostTensor w(f32(), {256, 128});
  fill_weights(w, 256, 128, 9);
  quantize(q, m, w.get());
  host_.set_threads(3);
  TensorSink threaded(host_);
  sdk::TensorSink handle(threaded.get());
  q.quantize(sdk::Call(nullptr), m.get(), w.get(), nullptr, nullptr, handle);
  for (const char* name : {"weight", "weight_scale_inv"}) {
    const HostTensor* a = sink_.find(name);
    const HostTensor* b = threaded.find(name);
    ASSERT_TRUE(a != nullptr && b != nullptr);
    const size_t bytes = static_cast<size_t>(a->numel()) * ((a->get().dtype.bits + 7) / 8);
    EXPECT_EQ(std::memcmp(a->get().data, b->get().data, bytes), 0) << name;
  }
}

TEST_F(Fp8Quantize, DequantizeWritesTheModulesDtype) {
  Fp8Quantizer q("{}");
  Module m("proj", QF_MODULE_LINEAR, 128, 128, false, qforge::test::bf16());
  TensorList list;
  HostTensor& codes = list.add("weight", e4m3(), {128, 128});
  list.add("weight_scale_inv", f32(), {1, 1}).data<float>()[0] = 3.0f;
  codes.data<uint8_t>()[0] = 0x39;  // 1.125 -> 3.375, exact in bf16
  codes.data<uint8_t>()[1] = 0x01;  // 2^-9 * 3
  TensorSink dense(host_);
  sdk::TensorSink handle(dense.get());
  q.dequantize(sdk::Call(nullptr), m.get(), list.get(), handle);
  const HostTensor* w = dense.find("weight");
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(sdk::same_dtype(w->get().dtype, qforge::test::bf16()));
  const auto* bits = static_cast<const uint16_t*>(w->get().data);
  auto as_float = [](uint16_t h) {
    const uint32_t b = static_cast<uint32_t>(h) << 16;
    float f = 0;
    std::memcpy(&f, &b, sizeof f);
    return f;
  };
  EXPECT_EQ(as_float(bits[0]), 3.375f);
  EXPECT_EQ(as_float(bits[1]), 3.0f * std::ldexp(1.0f, -9));
  EXPECT_EQ(as_float(bits[2]), 0.0f);
}

}  // namespace
}  // namespace qforge::plugins::fp8
