// The quantize hook's calibration contract (gptq_compute.hpp kHessianName): with a "hessian"
// tensor the GPTQ algorithm runs and the checkpoint decodes to its result; without one the
// module is quantized by round-to-nearest with a warning naming it; a bad Hessian gets an error
// that says what was expected.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "dense_tensor_io.hpp"  // plugins/common
#include "gptq_algorithm.hpp"
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

constexpr int64_t kOut = 32, kIn = 128;

// Weights and H = 2/N·XᵀX of correlated tokens.
struct Layer {
  std::vector<float> w;
  std::vector<double> h;
};

Layer make_layer(unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Layer l;
  l.w.resize(static_cast<size_t>(kOut * kIn));
  for (auto& v : l.w) v = static_cast<float>(0.05 * normal(rng));
  const int64_t n = 512;
  std::vector<double> mix(static_cast<size_t>(kIn * kIn));
  for (auto& v : mix) v = normal(rng) / std::sqrt(static_cast<double>(kIn));
  l.h.assign(static_cast<size_t>(kIn * kIn), 0.0);
  std::vector<double> z(static_cast<size_t>(kIn)), x(static_cast<size_t>(kIn));
  for (int64_t t = 0; t < n; ++t) {
    for (auto& v : z) v = normal(rng);
    for (int64_t i = 0; i < kIn; ++i) {
      double s = 0.0;
      for (int64_t k = 0; k < kIn; ++k)
        s += z[static_cast<size_t>(k)] * mix[static_cast<size_t>(k * kIn + i)];
      x[static_cast<size_t>(i)] = s;
    }
    for (int64_t i = 0; i < kIn; ++i) {
      for (int64_t j = 0; j < kIn; ++j) {
        l.h[static_cast<size_t>(i * kIn + j)] +=
            2.0 / n * x[static_cast<size_t>(i)] * x[static_cast<size_t>(j)];
      }
    }
  }
  // float32-representable, so F32 and F64 tensors carry the same values
  for (auto& v : l.h) v = static_cast<double>(static_cast<float>(v));
  return l;
}

class GptqHessian : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }

  HostTensor& add_weight(TensorList& keep, const Layer& l) {
    HostTensor& w = keep.add("weight", f32(), {kOut, kIn});
    std::memcpy(w.data<float>(), l.w.data(), l.w.size() * 4);
    return w;
  }
  void add_hessian(TensorList& calib, const Layer& l, int bits) {
    HostTensor& h = calib.add(kHessianName, sdk::make_dtype(kDLFloat, bits), {kIn, kIn});
    for (size_t k = 0; k < l.h.size(); ++k) {
      if (bits == 64) {
        h.data<double>()[k] = l.h[k];
      } else {
        h.data<float>()[k] = static_cast<float>(l.h[k]);
      }
    }
  }
  // Quantizes, then dequantizes what was written; the dense weight [O, I].
  std::vector<float> round_trip(GptqQuantizer& q, const Module& m, const DLTensor& w,
                                const qf_tensor_list* calibration) {
    TensorSink sink(host_);
    sdk::TensorSink handle(sink.get());
    q.quantize(sdk::Call(nullptr), m.get(), w, nullptr, calibration, handle);
    TensorList written;
    for (const auto& [name, t] : sink.tensors()) {
      HostTensor& copy =
          written.add(name, t->get().dtype,
                      std::vector<int64_t>(t->get().shape, t->get().shape + t->get().ndim));
      std::memcpy(copy.data<unsigned char>(), t->get().data,
                  static_cast<size_t>(t->numel()) * ((t->get().dtype.bits + 7) / 8));
    }
    EXPECT_NO_THROW(q.check_quantized(m.get(), written.get()));
    TensorSink dense(host_);
    sdk::TensorSink dense_handle(dense.get());
    q.dequantize(sdk::Call(nullptr), m.get(), written.get(), dense_handle);
    const auto* p = static_cast<const float*>(dense.find("weight")->get().data);
    return {p, p + kOut * kIn};
  }
  bool logged(const std::string& text) const {
    for (const auto& r : host_.logs()) {
      if (r.message.find(text) != std::string::npos) return true;
    }
    return false;
  }
  std::string error_of(GptqQuantizer& q, const Module& m, const DLTensor& w,
                       const qf_tensor_list* calibration, int32_t* code = nullptr) {
    TensorSink sink(host_);
    sdk::TensorSink handle(sink.get());
    try {
      q.quantize(sdk::Call(nullptr), m.get(), w, nullptr, calibration, handle);
    } catch (const sdk::Error& e) {
      if (code != nullptr) *code = e.code();
      return std::string(e.what()) + " | " + e.why() + " | " + e.fix();
    }
    return "";
  }

  TestHost host_;
};

TEST_F(GptqHessian, WithAHessianTheCheckpointDecodesToGptqsResult) {
  const Layer l = make_layer(1);
  const char* config = R"({"bits":4,"group_size":32,"desc_act":true,"sym":false})";
  GptqQuantizer q(config);
  Module m("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, kOut, kIn, false, f32());
  TensorList keep;
  HostTensor& w = add_weight(keep, l);
  TensorList calib;
  add_hessian(calib, l, 32);
  const std::vector<float> got = round_trip(q, m, w.get(), &calib.get());
  // Expected: the algorithm's own Unpacked with the scales as stored (float16).
  const GptqOutcome g =
      quantize_gptq(sdk::Call(nullptr), l.w.data(), kOut, kIn, l.h, parse_gptq_config(config));
  for (int64_t i = 0; i < kIn; ++i) {
    for (int64_t o = 0; o < kOut; ++o) {
      const auto gi = static_cast<size_t>(g.layer.g_idx[static_cast<size_t>(i)] * kOut + o);
      const float scale = half_to_float(float_to_half(g.layer.scales[gi]));
      const float expected =
          scale *
          static_cast<float>(g.layer.codes[static_cast<size_t>(i * kOut + o)] - g.layer.zeros[gi]);
      ASSERT_EQ(got[static_cast<size_t>(o * kIn + i)], expected) << "[" << o << ", " << i << "]";
    }
  }
  // and that is not what RTN gives
  const std::vector<float> rtn = round_trip(q, m, w.get(), nullptr);
  EXPECT_NE(got, rtn);
  EXPECT_TRUE(logged("no calibration tensor \"hessian\" passed; quantizing by round-to-nearest"));
  const nlohmann::json described = nlohmann::json::parse(q.describe_quantized(m.get()));
  EXPECT_EQ(described["algorithm"].get<std::string>().rfind("gptq (", 0), 0u) << described.dump();
}

// 128 inputs in groups of 48: the last group holds 32 (SmolLM2's 576 in groups of 128 is the
// real case). Natural order and act-order both decode to the algorithm's result.
TEST_F(GptqHessian, ShortLastGroupDecodesToGptqsResult) {
  const Layer l = make_layer(4);
  for (const char* config : {R"({"bits":4,"group_size":48})",
                             R"({"bits":4,"group_size":48,"desc_act":true,"sym":false})"}) {
    GptqQuantizer q(config);
    Module m("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, kOut, kIn, false, f32());
    std::string reason;
    ASSERT_TRUE(q.needs_quantization(m.get(), reason)) << reason;
    const nlohmann::json described = nlohmann::json::parse(q.describe_quantized(m.get()));
    EXPECT_EQ(described["tensors"][2]["shape"], nlohmann::json({3, kOut})) << described.dump();
    TensorList keep;
    HostTensor& w = add_weight(keep, l);
    TensorList calib;
    add_hessian(calib, l, 32);
    const std::vector<float> got = round_trip(q, m, w.get(), &calib.get());
    const GptqOutcome g =
        quantize_gptq(sdk::Call(nullptr), l.w.data(), kOut, kIn, l.h, parse_gptq_config(config));
    int64_t in_last_group = 0;
    for (int64_t i = 0; i < kIn; ++i) {
      const int32_t group = g.layer.g_idx[static_cast<size_t>(i)];
      ASSERT_GE(group, 0);
      ASSERT_LT(group, 3);
      if (group == 2) ++in_last_group;
      for (int64_t o = 0; o < kOut; ++o) {
        const auto gi = static_cast<size_t>(group * kOut + o);
        const float scale = half_to_float(float_to_half(g.layer.scales[gi]));
        const float expected =
            scale * static_cast<float>(g.layer.codes[static_cast<size_t>(i * kOut + o)] -
                                       g.layer.zeros[gi]);
        ASSERT_EQ(got[static_cast<size_t>(o * kIn + i)], expected)
            << config << " [" << o << ", " << i << "]";
      }
    }
    EXPECT_EQ(in_last_group, 32) << config;
  }
}

TEST_F(GptqHessian, Float64HessianGivesTheSameResultAsFloat32) {
  const Layer l = make_layer(2);
  GptqQuantizer q(R"({"bits":3,"group_size":32})");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, kOut, kIn, false, f32());
  TensorList keep;
  HostTensor& w = add_weight(keep, l);
  TensorList c32, c64;
  add_hessian(c32, l, 32);
  add_hessian(c64, l, 64);
  host_.clear_logs();
  EXPECT_EQ(round_trip(q, m, w.get(), &c32.get()), round_trip(q, m, w.get(), &c64.get()));
  EXPECT_FALSE(logged("round-to-nearest"));
}

TEST_F(GptqHessian, WithoutAHessianRtnRunsAndSaysSo) {
  const Layer l = make_layer(3);
  GptqQuantizer q(R"({"bits":4,"group_size":32,"desc_act":true})");
  Module m("model.layers.0.self_attn.o_proj", QF_MODULE_LINEAR, kOut, kIn, false, f32());
  TensorList keep;
  HostTensor& w = add_weight(keep, l);
  TensorList other;
  other.add("inputs", f32(), {4, kIn});
  const std::vector<float> got = round_trip(q, m, w.get(), &other.get());
  EXPECT_TRUE(
      logged("module 'model.layers.0.self_attn.o_proj': no calibration tensor \"hessian\" "
             "among the 1 passed; quantizing by round-to-nearest"));
  EXPECT_TRUE(logged("desc_act needs the Hessian"));
  GptqConfig c = parse_gptq_config(R"({"bits":4,"group_size":32})");
  const Unpacked rtn = quantize_rtn(l.w.data(), kOut, kIn, c, {});
  for (int64_t i = 0; i < kIn; ++i) {
    const auto gi = static_cast<size_t>((i / 32) * kOut);
    const float scale = half_to_float(float_to_half(rtn.scales[gi]));
    ASSERT_EQ(got[static_cast<size_t>(i)],
              scale * static_cast<float>(rtn.codes[static_cast<size_t>(i * kOut)] - rtn.zeros[gi]));
  }
}

TEST_F(GptqHessian, BadHessiansGetTheirOwnErrors) {
  const Layer l = make_layer(4);
  GptqQuantizer q(R"({"bits":4,"group_size":32})");
  Module m("model.layers.1.mlp.gate_proj", QF_MODULE_LINEAR, kOut, kIn, false, f32());
  TensorList keep;
  HostTensor& w = add_weight(keep, l);
  int32_t code = 0;
  {
    TensorList c;
    c.add(kHessianName, f32(), {kIn, kIn + 1});
    const std::string e = error_of(q, m, w.get(), &c.get(), &code);
    EXPECT_EQ(code, QF_CODE_INVALID_ARGUMENT);
    EXPECT_NE(e.find("module 'model.layers.1.mlp.gate_proj': calibration tensor 'hessian' has "
                     "shape [128, 129]"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("expected [in_features, in_features] = [128, 128]"), std::string::npos) << e;
  }
  {
    TensorList c;
    c.add(kHessianName, qforge::test::f16(), {kIn, kIn});
    const std::string e = error_of(q, m, w.get(), &c.get(), &code);
    EXPECT_EQ(code, QF_CODE_INVALID_ARGUMENT);
    EXPECT_NE(e.find("has dtype F16"), std::string::npos) << e;
    EXPECT_NE(e.find("float32 or float64"), std::string::npos) << e;
  }
  {
    TensorList bad;
    HostTensor& hb = bad.add(kHessianName, f32(), {kIn, kIn});
    for (size_t k = 0; k < l.h.size(); ++k) hb.data<float>()[k] = static_cast<float>(l.h[k]);
    hb.data<float>()[5 * kIn + 2] = std::nanf("");
    const std::string e = error_of(q, m, w.get(), &bad.get(), &code);
    EXPECT_EQ(code, QF_CODE_INVALID_ARGUMENT);
    EXPECT_NE(e.find("module 'model.layers.1.mlp.gate_proj': hessian has a non-finite value (NaN) "
                     "at [5, 2]"),
              std::string::npos)
        << e;
  }
  {
    TensorList c;
    HostTensor& h = c.add(kHessianName, f32(), {kIn, kIn});
    for (size_t k = 0; k < l.h.size(); ++k) h.data<float>()[k] = static_cast<float>(l.h[k]);
    h.data<float>()[9 * kIn + 9] = -100.0f;
    const std::string e = error_of(q, m, w.get(), &c.get(), &code);
    EXPECT_EQ(code, QF_CODE_FAILED_PRECONDITION);
    EXPECT_NE(e.find("module 'model.layers.1.mlp.gate_proj': the Hessian is not positive "
                     "definite"),
              std::string::npos)
        << e;
  }
}

}  // namespace
}  // namespace qforge::plugins::gptq
