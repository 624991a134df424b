// fbgemm_fp8 (per-channel, FORMATS.md §2.7): config, update_dtype, tensor set, row scales with
// FBGEMM's clamp, NaN refusal, dequantize and the emulated rowwise forward.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cpu/e4m3.hpp"
#include "fbgemm_quantizer.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::fp8 {
namespace {

using qforge::test::f32;
using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const sdk::Error& e) {
    return e.what();
  }
  return "";
}

class Fp8Fbgemm : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }
  TestHost host_;
  TensorSink sink_{host_};
  sdk::TensorSink handle_{sink_.get()};
};

TEST_F(Fp8Fbgemm, ConfigDefaultsToDictAndManifestKeys) {
  const FbgemmFp8Config c = parse_fbgemm_config(R"({"quant_method":"fbgemm_fp8"})");
  EXPECT_EQ(c.activation_scale_ub, 1200.0);
  EXPECT_EQ(
      to_quantization_config(c),
      nlohmann::json::parse(
          R"({"quant_method":"fbgemm_fp8","activation_scale_ub":1200.0,"modules_to_not_convert":null})"));
  EXPECT_NE(error_of([] {
              parse_fbgemm_config(R"({"activation_scale_ub":"big"})");
            }).find("activation_scale_ub"),
            std::string::npos);
  const YAML::Node manifest = YAML::LoadFile(QFORGE_SOURCE_DIR "/manifests/plugins/fp8.yaml");
  std::set<std::string> keys;
  for (const auto& m : manifest["methods"]) {
    if (m["quant_method"].as<std::string>() != kMethodFbgemmFp8) continue;
    for (const auto& k : m["config_keys"]) keys.insert(k.as<std::string>());
  }
  EXPECT_EQ(keys, (std::set<std::string>{"quant_method", "activation_scale_ub",
                                         "modules_to_not_convert"}));
}

TEST_F(Fp8Fbgemm, UpdateDtypeDefaultsToBfloat16AndRefusesFloat16) {
  FbgemmFp8Quantizer q("{}");
  EXPECT_EQ(q.update_dtype(""), "bfloat16");
  EXPECT_EQ(q.update_dtype("float32"), "float32");
  EXPECT_NE(error_of([&] { q.update_dtype("float16"); })
                .find("You cannot use FP8 with dtype=torch.float16. We recommend you passing "
                      "dtype=torch.bfloat16"),
            std::string::npos);
}

TEST_F(Fp8Fbgemm, RowScalesFollowFbgemmsReferenceIncludingTheClamp) {
  FbgemmFp8Quantizer q("{}");
  const int64_t rows = 4;  // per-channel: any shape
  const int64_t cols = 37;
  Module m("proj", QF_MODULE_LINEAR, rows, cols, false, f32());
  HostTensor w(f32(), {rows, cols});
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (int64_t i = 0; i < cols; ++i) {
    w.data<float>()[i] = n(rng);                      // row 0: ordinary
    w.data<float>()[cols + i] = 1e-6f * n(rng);       // row 1: tiny, hits the 448*512 clamp
    w.data<float>()[3 * cols + i] = 100.0f * n(rng);  // row 3: large; row 2 stays zero
  }
  q.quantize(sdk::Call(nullptr), m.get(), w.get(), nullptr, nullptr, handle_);
  const nlohmann::json d = nlohmann::json::parse(q.describe_quantized(m.get()));
  EXPECT_EQ(d["tensors"], nlohmann::json::parse(
                              R"([{"name":"weight","dtype":"F8_E4M3","shape":[4,37]},
                                  {"name":"weight_scale","dtype":"F32","shape":[4,1]}])"));
  const HostTensor* s = sink_.find("weight_scale");
  const HostTensor* codes = sink_.find("weight");
  ASSERT_NE(s, nullptr);
  ASSERT_NE(codes, nullptr);
  EXPECT_EQ(std::vector<int64_t>(s->get().shape, s->get().shape + 2), (std::vector<int64_t>{4, 1}));
  const auto* inv = static_cast<const float*>(s->get().data);
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0.0f;
    for (int64_t c = 0; c < cols; ++c)
      amax = std::max(amax, std::fabs(w.data<float>()[r * cols + c]));
    const float scale = std::min(448.0f / amax, 448.0f * 512.0f);
    EXPECT_EQ(inv[r], 1.0f / scale) << r;
    EXPECT_TRUE(std::isfinite(inv[r]) && inv[r] > 0.0f) << r;
    for (int64_t c = 0; c < cols; ++c) {
      ASSERT_EQ(static_cast<const uint8_t*>(codes->get().data)[r * cols + c],
                cpu::e4m3_from_float(w.data<float>()[r * cols + c] * scale))
          << r << "," << c;
    }
  }
  EXPECT_EQ(inv[2], 1.0f / (448.0f * 512.0f));  // all-zero row: clamped, never inf
}

TEST_F(Fp8Fbgemm, RefusesNanNamingModuleAndRow) {
  FbgemmFp8Quantizer q("{}");
  Module m("model.layers.2.mlp.gate_proj", QF_MODULE_LINEAR, 3, 8, false, f32());
  HostTensor w(f32(), {3, 8});
  w.data<float>()[2 * 8 + 5] = std::nanf("");
  const std::string err = error_of(
      [&] { q.quantize(sdk::Call(nullptr), m.get(), w.get(), nullptr, nullptr, handle_); });
  EXPECT_NE(err.find("model.layers.2.mlp.gate_proj"), std::string::npos) << err;
  EXPECT_NE(err.find("[2, 5]"), std::string::npos) << err;
}

TEST_F(Fp8Fbgemm, DequantizeAndForwardMatchARowwiseReference) {
  FbgemmFp8Quantizer q(R"({"activation_scale_ub":2.0})");
  const int64_t out = 5;
  const int64_t in = 64;
  const int64_t tokens = 2;
  Module m("proj", QF_MODULE_LINEAR, out, in, false, f32());
  HostTensor w(f32(), {out, in});
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t i = 0; i < out * in; ++i) w.data<float>()[i] = u(rng);
  q.quantize(sdk::Call(nullptr), m.get(), w.get(), nullptr, nullptr, handle_);
  TensorList list;
  for (const auto& [name, t] : sink_.tensors()) {
    HostTensor& c = list.add(name, t->get().dtype,
                             std::vector<int64_t>(t->get().shape, t->get().shape + t->get().ndim));
    std::memcpy(c.data<unsigned char>(), t->get().data,
                static_cast<size_t>(t->numel()) * ((t->get().dtype.bits + 7) / 8));
  }
  q.check_quantized(m.get(), list.get());
  TensorSink dense(host_);
  sdk::TensorSink dense_handle(dense.get());
  q.dequantize(sdk::Call(nullptr), m.get(), list.get(), dense_handle);
  const float* wd = static_cast<const float*>(dense.find("weight")->get().data);
  const float* inv = static_cast<const float*>(sink_.find("weight_scale")->get().data);
  const auto* codes = static_cast<const uint8_t*>(sink_.find("weight")->get().data);
  for (int64_t i = 0; i < out * in; ++i) {
    ASSERT_EQ(wd[i], cpu::e4m3_to_float(codes[i]) * inv[i / in]);
    ASSERT_LE(std::fabs(wd[i] - w.data<float>()[i]), std::fabs(w.data<float>()[i]) / 16 + 1e-3f);
  }
  HostTensor x(f32(), {tokens, in});
  for (int64_t i = 0; i < tokens * in; ++i) x.data<float>()[i] = u(rng);
  x.data<float>()[3] = 10.0f;  // row 0's max 10 is capped at ub = 2: saturates at 448
  HostTensor y(f32(), {tokens, out});
  q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), x.get(), nullptr, y.get());
  for (int64_t t = 0; t < tokens; ++t) {
    float amax = 0.0f;
    for (int64_t i = 0; i < in; ++i) amax = std::max(amax, std::fabs(x.data<float>()[t * in + i]));
    const float xs = std::min(448.0f / std::min(amax, 2.0f), 448.0f * 512.0f);
    for (int64_t o = 0; o < out; ++o) {
      float acc = 0.0f;
      for (int64_t i = 0; i < in; ++i)
        acc += cpu::e4m3_to_float(cpu::e4m3_from_float(x.data<float>()[t * in + i] * xs)) *
               cpu::e4m3_to_float(codes[o * in + i]);
      EXPECT_EQ(y.data<float>()[t * out + o], acc * (1.0f / xs) * inv[o]) << t << "," << o;
    }
  }
  // The capped row really saturated: 10 * 448 / 2 is far above 448.
  EXPECT_EQ(cpu::e4m3_from_float(10.0f * 224.0f), cpu::kE4m3MaxCode);
}

}  // namespace
}  // namespace qforge::plugins::fp8
