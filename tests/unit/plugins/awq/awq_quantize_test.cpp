// AWQ quantize (round-to-nearest with AWQ's quantizer), the calibration rule, pre-quantized
// checks (each bad tensor with its own message), module selection and the CPU forward, through
// the quantizer class (FORMATS.md §2.5).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "awq_quantizer.hpp"
#include "dense_tensor_io.hpp"  // plugins/common
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::awq {
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

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class AwqQuantize : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }

  // Quantizes into a fresh tensor list (as a checkpoint hands it back). `calibration` as the
  // host passes it: NULL, or a list (here empty: AWQ's statistics do not exist yet).
  void quantize(AwqQuantizer& q, const Module& m, const DLTensor& w, TensorList& list,
                const qf_tensor_list* calibration) {
    TensorSink sink(host_);
    sdk::TensorSink handle(sink.get());
    q.quantize(sdk::Call(nullptr), m.get(), w, nullptr, calibration, handle);
    for (const auto& [name, t] : sink.tensors()) {
      HostTensor& copy = list.add(name, t->get().dtype, shape_of(*t));
      std::memcpy(copy.data<unsigned char>(), t->get().data,
                  static_cast<size_t>(t->numel()) * ((t->get().dtype.bits + 7) / 8));
    }
  }
  std::vector<float> dequantize(AwqQuantizer& q, const Module& m, TensorList& list) {
    TensorSink dense(host_);
    sdk::TensorSink handle(dense.get());
    q.dequantize(sdk::Call(nullptr), m.get(), list.get(), handle);
    const HostTensor* w = dense.find("weight");
    EXPECT_NE(w, nullptr);
    const auto* p = static_cast<const float*>(w->get().data);
    return {p, p + w->numel()};
  }
  std::string check_error(AwqQuantizer& q, const Module& m, TensorList& list) {
    try {
      q.check_quantized(m.get(), list.get());
    } catch (const sdk::Error& e) {
      return std::string(e.what()) + " | " + e.why() + " | " + e.fix();
    }
    return "";
  }

  TestHost host_;
  TensorList no_statistics_;  // an empty, non-NULL calibration list
};

TEST_F(AwqQuantize, WritesTheTensorSetDescribeAnnouncesInBothLayouts) {
  for (const char* version : {"gemm", "gemv"}) {
    AwqQuantizer q(std::string(R"({"group_size":64,"version":")") + version + "\"}");
    Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 48, 256, false, f32());
    HostTensor w(f32(), {48, 256});
    fill(w, 1);
    TensorList list;
    quantize(q, m, w.get(), list, &no_statistics_.get());
    const nlohmann::json described = nlohmann::json::parse(q.describe_quantized(m.get()));
    ASSERT_EQ(described["tensors"].size(), 3u);
    for (const auto& t : described["tensors"]) {
      const DLTensor* got = sdk::find_tensor(&list.get(), t["name"].get<std::string>().c_str());
      ASSERT_NE(got, nullptr) << t.dump();
      EXPECT_EQ(sdk::dtype_name(got->dtype), t["dtype"].get<std::string>());
      EXPECT_EQ(std::vector<int64_t>(got->shape, got->shape + got->ndim),
                t["shape"].get<std::vector<int64_t>>());
    }
    EXPECT_NO_THROW(q.check_quantized(m.get(), list.get())) << version;
    if (std::string(version) == "gemm") {
      EXPECT_EQ(described["tensors"][0]["shape"], nlohmann::json::array({256, 6}));
      EXPECT_EQ(described["tensors"][1]["shape"], nlohmann::json::array({4, 6}));
      EXPECT_EQ(described["tensors"][2]["shape"], nlohmann::json::array({4, 48}));
    } else {
      // 4 groups of 64: calculate_zeros_width(256, 64) = 2 words, scales padded to 16 columns.
      EXPECT_EQ(described["tensors"][0]["shape"], nlohmann::json::array({48, 32}));
      EXPECT_EQ(described["tensors"][1]["shape"], nlohmann::json::array({48, 2}));
      EXPECT_EQ(described["tensors"][2]["shape"], nlohmann::json::array({48, 16}));
    }
  }
}

TEST_F(AwqQuantize, GemvPaddingIsZero) {
  // 128 inputs in groups of 32: 4 groups, but calculate_zeros_width pads qzeros to 4 words
  // (slots past group 3 stay 0) and scales to 32 columns (columns past 3 stay 0).
  AwqQuantizer q(R"({"group_size":32,"version":"gemv"})");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 16, 128, false, f32());
  HostTensor w(f32(), {16, 128});
  fill(w, 10);
  TensorList list;
  quantize(q, m, w.get(), list, &no_statistics_.get());
  const DLTensor* qz = sdk::find_tensor(&list.get(), "qzeros");
  const auto* words = static_cast<const uint32_t*>(qz->data);
  const std::vector<float> scales = read_floats(*sdk::find_tensor(&list.get(), "scales"), "s");
  for (int64_t o = 0; o < 16; ++o) {
    EXPECT_EQ(words[o * 4] >> 16, 0u) << o;  // slots 4..7 of the first word
    for (int64_t c = 1; c < 4; ++c) EXPECT_EQ(words[o * 4 + c], 0u) << o;
    for (int64_t g = 0; g < 32; ++g) {
      const float s = scales[static_cast<size_t>(o * 32 + g)];
      if (g < 4) {
        EXPECT_GT(s, 0.0f) << o << ", " << g;
      } else {
        EXPECT_EQ(s, 0.0f) << o << ", " << g;
      }
    }
  }
}

TEST_F(AwqQuantize, GemmAndGemvHoldTheSameWeights) {
  HostTensor w(f32(), {32, 128});
  fill(w, 2);
  Module m("model.layers.0.self_attn.q_proj", QF_MODULE_LINEAR, 32, 128, false, f32());
  std::vector<float> dense[2];
  int n = 0;
  for (const char* version : {"gemm", "gemv"}) {
    AwqQuantizer q(std::string(R"({"group_size":32,"version":")") + version + "\"}");
    TensorList list;
    quantize(q, m, w.get(), list, &no_statistics_.get());
    dense[n++] = dequantize(q, m, list);
  }
  EXPECT_EQ(dense[0], dense[1]);
}

TEST_F(AwqQuantize, DequantizeIsWithinHalfAStepOfTheWeight) {
  for (const char* zp : {"true", "false"}) {
    for (const char* g : {"32", "-1"}) {
      AwqQuantizer q(std::string(R"({"zero_point":)") + zp + R"(,"group_size":)" + g + "}");
      Module m("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, 16, 128, false, f32());
      HostTensor w(f32(), {16, 128});
      fill(w, 3);
      TensorList list;
      quantize(q, m, w.get(), list, &no_statistics_.get());
      const std::vector<float> d = dequantize(q, m, list);
      const std::vector<float> scales =
          read_floats(*sdk::find_tensor(&list.get(), "scales"), "scales");
      const int64_t gs = std::string(g) == "-1" ? 128 : 32;
      const auto* src = w.data<float>();
      for (int64_t o = 0; o < 16; ++o) {
        for (int64_t i = 0; i < 128; ++i) {
          const float s = scales[static_cast<size_t>((i / gs) * 16 + o)];
          // Half a step, plus the float16 rounding of the scale over at most 16 steps.
          ASSERT_LE(std::fabs(d[static_cast<size_t>(o * 128 + i)] - src[o * 128 + i]),
                    0.5f * s + 16.0f * s * 1e-3f)
              << "zero_point " << zp << " group_size " << g << " [" << o << ", " << i << "]";
        }
      }
    }
  }
}

TEST_F(AwqQuantize, SymmetricQzerosWordsAreEights) {
  AwqQuantizer q(R"({"zero_point":false,"group_size":32})");
  Module m("model.layers.0.mlp.gate_proj", QF_MODULE_LINEAR, 16, 64, false, f32());
  HostTensor w(f32(), {16, 64});
  fill(w, 4);
  TensorList list;
  quantize(q, m, w.get(), list, &no_statistics_.get());
  const DLTensor* qz = sdk::find_tensor(&list.get(), "qzeros");
  ASSERT_NE(qz, nullptr);
  const auto* words = static_cast<const uint32_t*>(qz->data);
  for (int64_t n = 0; n < sdk::numel(*qz); ++n) EXPECT_EQ(words[n], 0x88888888u);
}

TEST_F(AwqQuantize, NoCalibrationIsTransformersErrorUnlessDataFreeIsChosen) {
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 16, 128, false, f32());
  HostTensor w(f32(), {16, 128});
  fill(w, 5);
  AwqQuantizer strict("{}");
  TensorList list;
  try {
    quantize(strict, m, w.get(), list, nullptr);
    FAIL() << "quantize without calibration succeeded";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), QF_CODE_FAILED_PRECONDITION);
    EXPECT_TRUE(has(e.what(), "model.layers.0.mlp.up_proj")) << e.what();
    EXPECT_TRUE(has(e.why(), "does require the model to be pre-quantized")) << e.why();
    EXPECT_TRUE(has(e.fix(), "data_free=true")) << e.fix();
  }
  AwqQuantizer data_free(R"({"data_free":true})");
  TensorList ok;
  EXPECT_NO_THROW(quantize(data_free, m, w.get(), ok, nullptr));
  EXPECT_NE(sdk::find_tensor(&ok.get(), "qweight"), nullptr);
}

TEST_F(AwqQuantize, BadPreQuantizedTensorsGetTheirOwnMessages) {
  AwqQuantizer q(R"({"group_size":32})");
  Module m("model.layers.3.mlp.up_proj", QF_MODULE_LINEAR, 16, 128, false, f32());
  HostTensor w(f32(), {16, 128});
  fill(w, 6);
  TensorList good;
  quantize(q, m, w.get(), good, &no_statistics_.get());
  ASSERT_EQ(check_error(q, m, good), "");
  const DLDataType i32 = sdk::make_dtype(kDLInt, 32);
  const DLDataType f16 = sdk::make_dtype(kDLFloat, 16);
  auto with = [&](TensorList& list, const std::string& replaced, DLDataType dtype,
                  std::vector<int64_t> shape) {
    for (const char* name : {"qweight", "qzeros", "scales"}) {
      if (replaced == name) {
        list.add(name, dtype, shape);
      } else {
        const DLTensor* t = sdk::find_tensor(&good.get(), name);
        list.add(name, t->dtype, std::vector<int64_t>(t->shape, t->shape + t->ndim));
      }
    }
  };
  {  // A GEMV checkpoint read as GEMM: the layout is named with the fix.
    TensorList list;
    with(list, "qweight", i32, {16, 16});
    const std::string e = check_error(q, m, list);
    EXPECT_TRUE(has(e,
                    "'model.layers.3.mlp.up_proj': tensor 'qweight' has shape [16, 16], the "
                    "gemv layout"))
        << e;
    EXPECT_TRUE(has(e, "set version to \"gemv\"")) << e;
  }
  {  // A qweight that fits neither layout.
    TensorList list;
    with(list, "qweight", i32, {128, 4});
    const std::string e = check_error(q, m, list);
    EXPECT_TRUE(has(e, "tensor 'qweight' has shape [128, 4]")) << e;
    EXPECT_TRUE(has(e, "expected [128, 2]")) << e;
  }
  {  // Wrong dtype.
    TensorList list;
    with(list, "qweight", sdk::make_dtype(kDLFloat, 32), {128, 2});
    const std::string e = check_error(q, m, list);
    EXPECT_TRUE(has(e, "tensor 'qweight' has dtype F32")) << e;
    EXPECT_TRUE(has(e, "expected I32")) << e;
  }
  {  // qzeros with the group count of another group_size.
    TensorList list;
    with(list, "qzeros", i32, {2, 2});
    const std::string e = check_error(q, m, list);
    EXPECT_TRUE(has(e, "tensor 'qzeros' has 2 groups (rows), expected 4")) << e;
    EXPECT_TRUE(has(e, "2 groups would mean group_size 64")) << e;
  }
  {  // scales in int32.
    TensorList list;
    with(list, "scales", i32, {4, 16});
    const std::string e = check_error(q, m, list);
    EXPECT_TRUE(has(e, "tensor 'scales' has dtype I32")) << e;
  }
  {  // scales with the wrong group count.
    TensorList list;
    with(list, "scales", f16, {8, 16});
    const std::string e = check_error(q, m, list);
    EXPECT_TRUE(has(e, "tensor 'scales' has 8 groups (rows), expected 4")) << e;
  }
  {  // A missing tensor.
    TensorList list;
    with(list, "none", i32, {});
    list.remove("qzeros");
    const std::string e = check_error(q, m, list);
    EXPECT_TRUE(has(e, "tensor 'qzeros' is missing")) << e;
  }
  {  // GEMV: qzeros with the wrong width.
    AwqQuantizer gemv(R"({"group_size":32,"version":"gemv"})");
    TensorList g;
    quantize(gemv, m, w.get(), g, &no_statistics_.get());
    ASSERT_EQ(check_error(gemv, m, g), "");
    TensorList list;
    list.add("qweight", i32, {16, 16});
    list.add("qzeros", i32, {16, 1});  // 4 groups fit one word, but AutoAWQ pads to 4
    list.add("scales", f16, {16, 32});
    const std::string e = check_error(gemv, m, list);
    EXPECT_TRUE(has(e, "tensor 'qzeros' has 1 columns, expected 4")) << e;
    EXPECT_TRUE(has(e, "calculate_zeros_width(128, 32) = 4")) << e;
  }
}

TEST_F(AwqQuantize, ModulesThatDoNotPackAreSkippedWithTheReason) {
  AwqQuantizer q(R"({"group_size":128,"modules_to_not_convert":["gate"]})");
  std::string reason;
  Module odd_out("model.layers.0.mlp.x", QF_MODULE_LINEAR, 20, 256);
  EXPECT_FALSE(q.needs_quantization(odd_out.get(), reason));
  EXPECT_TRUE(has(reason, "out_features 20 is not a multiple of 8")) << reason;
  Module odd_in("model.layers.0.mlp.y", QF_MODULE_LINEAR, 64, 200);
  EXPECT_FALSE(q.needs_quantization(odd_in.get(), reason));
  EXPECT_TRUE(has(reason, "in_features 200 is not a multiple of group_size 128")) << reason;
  // AWQ matches modules_to_not_convert as substrings: "gate" also keeps gate_proj dense.
  Module gate_proj("model.layers.0.mlp.gate_proj", QF_MODULE_LINEAR, 64, 256);
  EXPECT_FALSE(q.needs_quantization(gate_proj.get(), reason));
  EXPECT_TRUE(has(reason, "modules_to_not_convert ('gate'")) << reason;
  Module up("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 64, 256);
  EXPECT_TRUE(q.needs_quantization(up.get(), reason));
  AwqQuantizer gemv(R"({"group_size":16,"version":"gemv"})");
  Module small("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 64, 256);
  EXPECT_FALSE(gemv.needs_quantization(small.get(), reason));
  EXPECT_TRUE(has(reason, "group_size 16 has no GEMV zeros width")) << reason;
  // Quantizing one anyway names the module.
  HostTensor w(f32(), {20, 256});
  TensorList list;
  try {
    quantize(q, odd_out, w.get(), list, &no_statistics_.get());
    FAIL() << "a module that does not pack was quantized";
  } catch (const sdk::Error& e) {
    EXPECT_TRUE(has(e.what(), "module 'model.layers.0.mlp.x' cannot be written as AWQ"))
        << e.what();
  }
}

TEST_F(AwqQuantize, ForwardEqualsDequantizeThenMatmulAndIsTheSameOnEveryIsa) {
  AwqQuantizer q(R"({"group_size":64})");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 72, 320, true, f32());
  HostTensor w(f32(), {72, 320});
  fill(w, 7);
  TensorList list;
  quantize(q, m, w.get(), list, &no_statistics_.get());
  const std::vector<float> d = dequantize(q, m, list);
  HostTensor x(f32(), {5, 320});
  fill(x, 8);
  HostTensor bias(f32(), {72});
  fill(bias, 9);
  // avx512 where the CPU has it; elsewhere select_isa falls back and the run repeats avx2.
  std::vector<float> outputs[3];
  int n = 0;
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    ::setenv("QFORGE_AWQ_KERNEL", isa, 1);
    HostTensor y(f32(), {5, 72});
    q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), x.get(), &bias.get(), y.get());
    outputs[n++].assign(y.data<float>(), y.data<float>() + y.numel());
  }
  ::unsetenv("QFORGE_AWQ_KERNEL");
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], outputs[2]);
  for (int64_t t = 0; t < 5; ++t) {
    for (int64_t o = 0; o < 72; ++o) {
      double ref = bias.data<float>()[o];
      for (int64_t i = 0; i < 320; ++i) {
        ref +=
            static_cast<double>(x.data<float>()[t * 320 + i]) * d[static_cast<size_t>(o * 320 + i)];
      }
      ASSERT_NEAR(outputs[0][static_cast<size_t>(t * 72 + o)], ref, 1e-4) << t << ", " << o;
    }
  }
}

TEST_F(AwqQuantize, GpuCallsAndRequestsAreRefused) {
  AwqQuantizer q("{}");
  try {
    q.validate_environment("{}", R"({"device":"cuda:0","pre_quantized":true})");
    FAIL() << "a cuda request was accepted";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), QF_CODE_FAILED_PRECONDITION);
    EXPECT_TRUE(has(e.what(), "no GPU kernels")) << e.what();
  }
  EXPECT_NO_THROW(q.validate_environment("{}", R"({"device":"cpu","pre_quantized":true})"));
}

}  // namespace
}  // namespace qforge::plugins::awq
