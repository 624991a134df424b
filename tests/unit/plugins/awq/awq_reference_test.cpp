// The plugin against tests/reference/awq/awq_reference.json, an independent NumPy re-statement
// of AutoAWQ's GEMM and GEMV layouts and AWQ's quantizer (tools/reference/awq_reference.py).
// Packing, dequantize and the quantizer's codes are compared exactly; the forward within float32
// summation error of a float64 reference.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq_pack.hpp"
#include "awq_quantizer.hpp"
#include "awq_rtn.hpp"
#include "awq_test_util.hpp"

namespace qforge::plugins::awq {
namespace {

using qforge::test::f32;
using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;
using test_util::add_f16;
using test_util::add_i32;

template <class T>
std::vector<T> as(const nlohmann::json& j) {
  return j.get<std::vector<T>>();
}

class AwqReference : public ::testing::Test {
 protected:
  void SetUp() override {
    sdk::g_host = host_.api();
    ref_ = test_util::load_reference();
  }
  // The layout case as a tensor list in `version`'s layout.
  void fill(TensorList& list, const std::string& version) {
    const nlohmann::json& l = ref_["layout"];
    const int64_t in = l["in_features"], out = l["out_features"], g = l["group_size"];
    const nlohmann::json& v = l[version];
    if (version == "gemm") {
      add_i32(list, "qweight", as<int32_t>(v["qweight"]), {in, out / 8});
      add_i32(list, "qzeros", as<int32_t>(v["qzeros"]), {in / g, out / 8});
      add_f16(list, "scales", as<float>(v["scales"]), {in / g, out});
    } else {
      const int64_t width = v["zeros_width"];
      add_i32(list, "qweight", as<int32_t>(v["qweight"]), {out, in / 8});
      add_i32(list, "qzeros", as<int32_t>(v["qzeros"]), {out, width});
      add_f16(list, "scales", as<float>(v["scales"]), {out, width * 8});
    }
  }

  TestHost host_;
  nlohmann::json ref_;
};

TEST_F(AwqReference, PackingMatchesAutoAwqsLayouts) {
  const nlohmann::json& l = ref_["layout"];
  const int64_t in = l["in_features"], out = l["out_features"], g = l["group_size"];
  const std::vector<uint8_t> codes = as<uint8_t>(l["codes"]);
  const std::vector<uint8_t> zeros = as<uint8_t>(l["zeros"]);
  std::vector<int32_t> w(static_cast<size_t>(in * out / 8));
  pack_gemm(codes.data(), in, out, w.data());
  EXPECT_EQ(w, as<int32_t>(l["gemm"]["qweight"]));
  std::vector<int32_t> z(static_cast<size_t>(in / g * out / 8));
  pack_gemm(zeros.data(), in / g, out, z.data());
  EXPECT_EQ(z, as<int32_t>(l["gemm"]["qzeros"]));
  pack_gemv_qweight(codes.data(), in, out, w.data());
  EXPECT_EQ(w, as<int32_t>(l["gemv"]["qweight"]));
  const int64_t width = l["gemv"]["zeros_width"];
  EXPECT_EQ(gemv_zeros_width(in, g), width);
  std::vector<int32_t> zv(static_cast<size_t>(out * width));
  pack_gemv_qzeros(zeros.data(), in / g, out, width, zv.data());
  EXPECT_EQ(zv, as<int32_t>(l["gemv"]["qzeros"]));
  for (const auto& row : ref_["zeros_width"]) {
    EXPECT_EQ(gemv_zeros_width(row[0], row[1]), row[2].is_null() ? 0 : row[2].get<int64_t>())
        << row.dump();
  }
}

TEST_F(AwqReference, GemmAndGemvDequantizeToTheReferenceWeight) {
  const nlohmann::json& l = ref_["layout"];
  const int64_t in = l["in_features"], out = l["out_features"];
  const std::vector<float> expected = as<float>(l["weight"]);
  for (const std::string version : {"gemm", "gemv"}) {
    AwqQuantizer q(R"({"group_size":)" + l["group_size"].dump() + R"(,"version":")" + version +
                   "\"}");
    Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, out, in, false, f32());
    TensorList list;
    fill(list, version);
    ASSERT_NO_THROW(q.check_quantized(m.get(), list.get())) << version;
    TensorSink dense(host_);
    sdk::TensorSink handle(dense.get());
    q.dequantize(sdk::Call(nullptr), m.get(), list.get(), handle);
    const HostTensor* w = dense.find("weight");
    ASSERT_NE(w, nullptr);
    const auto* p = static_cast<const float*>(w->get().data);
    ASSERT_EQ(static_cast<size_t>(w->numel()), expected.size());
    for (size_t n = 0; n < expected.size(); ++n) ASSERT_EQ(p[n], expected[n]) << version << n;
  }
}

TEST_F(AwqReference, ForwardMatchesTheReferenceProduct) {
  const nlohmann::json& l = ref_["layout"];
  const int64_t in = l["in_features"], out = l["out_features"];
  const std::vector<float> x = as<float>(l["x"]);
  const std::vector<double> y = as<double>(l["y"]);
  const int64_t tokens = static_cast<int64_t>(x.size()) / in;
  for (const std::string version : {"gemm", "gemv"}) {
    AwqQuantizer q(R"({"group_size":)" + l["group_size"].dump() + R"(,"version":")" + version +
                   "\"}");
    Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, out, in, false, f32());
    TensorList list;
    fill(list, version);
    HostTensor xt(f32(), {tokens, in});
    std::copy(x.begin(), x.end(), xt.data<float>());
    HostTensor yt(f32(), {tokens, out});
    q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), xt.get(), nullptr, yt.get());
    for (size_t n = 0; n < y.size(); ++n) {
      ASSERT_NEAR(yt.data<float>()[n], y[n], 1e-5 * (1.0 + std::fabs(y[n]))) << version << n;
    }
  }
}

TEST_F(AwqReference, QuantizerMatchesAwqsPseudoQuantizer) {
  for (const char* name : {"rtn_zero_point", "rtn_symmetric"}) {
    const nlohmann::json& r = ref_[name];
    AwqConfig c;
    c.group_size = r["group_size"];
    c.zero_point = r["zero_point"];
    const int64_t in = r["in_features"], out = r["out_features"];
    const std::vector<float> w = as<float>(r["w"]);
    const Layer layer = quantize_rtn(w.data(), out, in, c);
    EXPECT_EQ(layer.codes, as<uint8_t>(r["codes"])) << name;
    EXPECT_EQ(layer.zeros, as<uint8_t>(r["zeros"])) << name;
    EXPECT_EQ(layer.scales, as<float>(r["scales"])) << name;
    std::vector<int32_t> words(static_cast<size_t>(in * out / 8));
    pack_gemm(layer.codes.data(), in, out, words.data());
    EXPECT_EQ(words, as<int32_t>(r["gemm_qweight"])) << name;
  }
}

}  // namespace
}  // namespace qforge::plugins::awq
