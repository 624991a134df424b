// Quantize, dequantize, forward and checks through the quantizer class; layers written by hqq
// itself (tests/reference/hqq/*.json, made by tools/reference/hqq_reference.py with the hqq
// package) are read back exactly, and quantizing the same weights here agrees with hqq.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "hqq_compute.hpp"
#include "hqq_quantizer.hpp"
#include "hqq_tensor_io.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::hqq {
namespace {

using qforge::test::f32;
using qforge::test::HostTensor;
using qforge::test::Module;
using qforge::test::TensorList;
using qforge::test::TensorSink;
using qforge::test::TestHost;

std::vector<int64_t> shape_of(const DLTensor& t) { return {t.shape, t.shape + t.ndim}; }

size_t nbytes(const DLTensor& t) {
  return static_cast<size_t>(sdk::numel(t)) * ((t.dtype.bits + 7) / 8);
}

DLDataType dtype_from_torch(const std::string& name) {
  if (name == "float32") return sdk::make_dtype(kDLFloat, 32);
  if (name == "float16") return sdk::make_dtype(kDLFloat, 16);
  if (name == "bfloat16") return sdk::make_dtype(kDLBfloat, 16);
  if (name == "uint8") return sdk::make_dtype(kDLUInt, 8);
  if (name == "int32") return sdk::make_dtype(kDLInt, 32);
  if (name == "int64") return sdk::make_dtype(kDLInt, 64);
  ADD_FAILURE() << "unknown dtype " << name;
  return sdk::make_dtype(kDLFloat, 32);
}

// Fills `t` from the reference's value list (floats exact in their dtype, integers as ints).
void fill(HostTensor& t, const nlohmann::json& values) {
  const DLTensor& d = t.get();
  const int64_t n = t.numel();
  ASSERT_EQ(static_cast<int64_t>(values.size()), n);
  if (d.dtype.code == kDLFloat || d.dtype.code == kDLBfloat) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = values[i].get<float>();
    write_floats(v.data(), n, float_kind(d.dtype, "ref"), t.data<unsigned char>());
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x = values[i].get<int64_t>();
    if (d.dtype.bits == 8) t.data<uint8_t>()[i] = static_cast<uint8_t>(x);
    if (d.dtype.bits == 32) t.data<int32_t>()[i] = static_cast<int32_t>(x);
    if (d.dtype.bits == 64) t.data<int64_t>()[i] = x;
  }
}

class HqqQuantize : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }

  void quantize(HqqQuantizer& q, const Module& m, const DLTensor& w, TensorSink& sink) {
    sdk::TensorSink handle(sink.get());
    q.quantize(sdk::Call(nullptr), m.get(), w, nullptr, nullptr, handle);
  }
  static void copy_outputs(const TensorSink& sink, TensorList& list) {
    for (const auto& [name, t] : sink.tensors()) {
      HostTensor& copy = list.add(name, t->get().dtype, shape_of(t->get()));
      std::memcpy(copy.data<unsigned char>(), t->get().data, nbytes(t->get()));
    }
  }
  std::vector<float> dequantize(HqqQuantizer& q, const Module& m, TensorList& list) {
    TensorSink dense(host_);
    sdk::TensorSink handle(dense.get());
    q.dequantize(sdk::Call(nullptr), m.get(), list.get(), handle);
    const HostTensor* w = dense.find("weight");
    EXPECT_NE(w, nullptr);
    return read_floats(w->get(), "weight");
  }

  TestHost host_;
};

void fill_normal(HostTensor& w, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> v(static_cast<size_t>(w.numel()));
  for (auto& x : v) x = normal(rng);
  write_floats(v.data(), w.numel(), float_kind(w.get().dtype, "w"), w.data<unsigned char>());
}

TEST_F(HqqQuantize, OutputsAreWhatDescribeQuantizedAnnounces) {
  for (const char* cfg : {R"({"nbits":4})", R"({"nbits":3,"axis":0,"group_size":16})",
                          R"({"nbits":2,"group_size":32})", R"({"nbits":1.58,"group_size":8})",
                          R"({"nbits":6,"axis":0})"}) {
    HqqQuantizer q(cfg);
    Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 64, 128, false, test::bf16());
    HostTensor w(test::bf16(), {64, 128});
    fill_normal(w, 1);
    TensorSink sink(host_);
    quantize(q, m, w.get(), sink);
    const auto described = nlohmann::json::parse(q.describe_quantized(m.get()))["tensors"];
    ASSERT_EQ(described.size(), sink.tensors().size()) << cfg;
    for (const auto& t : described) {
      const HostTensor* got = sink.find(t["name"].get<std::string>());
      ASSERT_NE(got, nullptr) << t.dump();
      EXPECT_EQ(sdk::dtype_name(got->get().dtype), t["dtype"].get<std::string>()) << cfg;
      EXPECT_EQ(shape_of(got->get()), t["shape"].get<std::vector<int64_t>>()) << cfg;
    }
    TensorList list;
    copy_outputs(sink, list);
    EXPECT_NO_THROW(q.check_quantized(m.get(), list.get())) << cfg;
    // Reconstruction: relative RMS error well below 1 for every width.
    const std::vector<float> deq = dequantize(q, m, list);
    const std::vector<float> orig = read_floats(w.get(), "w");
    double e2 = 0, r2 = 0;
    for (size_t i = 0; i < orig.size(); ++i) {
      e2 += (deq[i] - orig[i]) * (deq[i] - orig[i]);
      r2 += orig[i] * orig[i];
    }
    EXPECT_LT(std::sqrt(e2 / r2), 0.7) << cfg;
  }
}

TEST_F(HqqQuantize, MetaFieldsUseHqqsEncodings) {
  HqqQuantizer q(R"({"nbits":4,"group_size":64})");
  Module m("model.layers.0.self_attn.q_proj", QF_MODULE_LINEAR, 32, 64, false, test::bf16());
  HostTensor w(test::bf16(), {32, 64});
  fill_normal(w, 2);
  TensorSink sink(host_);
  quantize(q, m, w.get(), sink);
  EXPECT_EQ(decode_string(sink.find("packing")->get(), "packing"), "4bit_u8");
  EXPECT_EQ(decode_string(sink.find("compute_dtype")->get(), "c"), "torch.bfloat16");
  EXPECT_EQ(decode_string(sink.find("unpack_view_dtype")->get(), "u"), "torch.uint8");
  EXPECT_EQ(decode_size(sink.find("shape")->get(), "shape"), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(decode_int(sink.find("nbits")->get(), "nbits"), 4);
  EXPECT_EQ(decode_int(sink.find("group_size")->get(), "g"), 64);
  EXPECT_EQ(decode_int(sink.find("axis")->get(), "axis"), 1);
  EXPECT_EQ(decode_int(sink.find("round_zero")->get(), "r"), 1);
  EXPECT_EQ(decode_int(sink.find("encoded_state_dict")->get(), "e"), 1);
  EXPECT_EQ(decode_int(sink.find("offload_meta")->get(), "o"), 0);
  EXPECT_TRUE(sdk::same_dtype(sink.find("scale")->get().dtype, test::bf16()));
}

TEST_F(HqqQuantize, ForwardIsXTimesDequantizedTransposePlusBias) {
  HqqQuantizer q(R"({"nbits":3,"group_size":32,"axis":0})");
  Module m("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, 48, 64, true, f32());
  HostTensor w(f32(), {48, 64});
  fill_normal(w, 3);
  TensorSink sink(host_);
  quantize(q, m, w.get(), sink);
  TensorList list;
  copy_outputs(sink, list);
  const std::vector<float> deq = dequantize(q, m, list);
  HostTensor b(f32(), {48});
  fill_normal(b, 5);
  // 3 tokens: threads split output rows; 9: blocks of 4 tokens plus a remainder of 1.
  for (int64_t tokens : {3, 9}) {
    HostTensor x(f32(), {tokens, 64});
    fill_normal(x, 4);
    HostTensor y(f32(), {tokens, 48});
    q.linear_forward(sdk::Call(nullptr), m.get(), list.get(), x.get(), &b.get(), y.get());
    for (int64_t t = 0; t < tokens; ++t) {
      for (int o = 0; o < 48; ++o) {
        double acc = b.data<float>()[o];
        for (int i = 0; i < 64; ++i) acc += x.data<float>()[t * 64 + i] * deq[o * 64 + i];
        EXPECT_NEAR(y.data<float>()[t * 48 + o], acc, 1e-5) << "tokens " << tokens;
      }
    }
  }
}

TEST_F(HqqQuantize, CheckQuantizedNamesWhatIsWrong) {
  HqqQuantizer q("{}");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 32, 64, false, f32());
  HostTensor w(f32(), {32, 64});
  fill_normal(w, 6);
  TensorSink sink(host_);
  quantize(q, m, w.get(), sink);
  TensorList list;
  copy_outputs(sink, list);
  list.remove("zero");
  try {
    q.check_quantized(m.get(), list.get());
    FAIL() << "missing zero accepted";
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'zero' is missing"), std::string::npos);
  }
  Module wrong("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 64, 32, false, f32());
  TensorList again;
  copy_outputs(sink, again);
  EXPECT_THROW(q.check_quantized(wrong.get(), again.get()), sdk::Error);
}

TEST_F(HqqQuantize, NonFiniteWeightsAndUndividedShapesAreRefused) {
  HqqQuantizer q("{}");
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 8, 64, false, f32());
  HostTensor w(f32(), {8, 64});
  w.data<float>()[5] = std::nanf("");
  TensorSink sink(host_);
  EXPECT_THROW(quantize(q, m, w.get(), sink), sdk::Error);
  Module odd("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 6, 20, false, f32());
  EXPECT_THROW((void)q.describe_quantized(odd.get()), sdk::Error);
}

// ---- layers written by hqq itself -------------------------------------------------------------

std::vector<std::filesystem::path> reference_files() {
  std::vector<std::filesystem::path> out;
  const std::filesystem::path dir =
      std::filesystem::path(QFORGE_SOURCE_DIR) / "tests/reference/hqq";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".json") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(HqqQuantize, HqqWrittenLayersReadBackExactly) {
  const auto files = reference_files();
  ASSERT_GE(files.size(), 5u);
  for (const auto& path : files) {
    std::ifstream in(path);
    const nlohmann::json ref = nlohmann::json::parse(in);
    const DLDataType dtype = dtype_from_torch(ref["dtype"]);
    Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, ref["out_features"],
             ref["in_features"], false, dtype);
    TensorList list;
    for (const auto& [name, t] : ref["state_dict"].items()) {
      HostTensor& h = list.add(name, dtype_from_torch(t["dtype"]), t["shape"]);
      fill(h, t["values"]);
    }
    HqqQuantizer q("{}");  // a pre-quantized layer carries its own meta; the config is unused
    ASSERT_NO_THROW(q.check_quantized(m.get(), list.get())) << path;
    const std::vector<float> deq = dequantize(q, m, list);
    const auto& expect = ref["dequantized"]["values"];
    ASSERT_EQ(deq.size(), expect.size());
    int64_t differ = 0;
    for (size_t i = 0; i < deq.size(); ++i) differ += deq[i] != expect[i].get<float>() ? 1 : 0;
    EXPECT_EQ(differ, 0) << path.filename() << ": dequantized values differ from hqq's";
  }
}

TEST_F(HqqQuantize, QuantizingHqqsInputsAgreesWithHqq) {
  for (const auto& path : reference_files()) {
    std::ifstream in(path);
    const nlohmann::json ref = nlohmann::json::parse(in);
    const DLDataType dtype = dtype_from_torch(ref["dtype"]);
    Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, ref["out_features"],
             ref["in_features"], false, dtype);
    HostTensor w(dtype, ref["weight"]["shape"]);
    fill(w, ref["weight"]["values"]);
    nlohmann::json cfg = {
        {"nbits", ref["nbits"]}, {"group_size", ref["group_size"]}, {"axis", ref["axis"]}};
    HqqQuantizer q(cfg.dump());
    TensorSink sink(host_);
    quantize(q, m, w.get(), sink);
    // Same tensor set, dtypes and shapes as hqq's state_dict.
    ASSERT_EQ(sink.tensors().size(), ref["state_dict"].size()) << path.filename();
    for (const auto& [name, t] : ref["state_dict"].items()) {
      const HostTensor* got = sink.find(name);
      ASSERT_NE(got, nullptr) << name;
      EXPECT_TRUE(sdk::same_dtype(got->get().dtype, dtype_from_torch(t["dtype"]))) << name;
      EXPECT_EQ(shape_of(got->get()), t["shape"].get<std::vector<int64_t>>()) << name;
    }
    // Meta fields and the scale (min/max only) are identical; zero and W_q come out of the
    // optimizer, whose pow and group means may differ from PyTorch's in the last bit.
    for (const char* name : {"nbits", "group_size", "shape", "axis", "packing", "compute_dtype",
                             "unpack_view_dtype", "round_zero", "optimize", "scale"}) {
      HostTensor expect(dtype_from_torch(ref["state_dict"][name]["dtype"]),
                        ref["state_dict"][name]["shape"]);
      fill(expect, ref["state_dict"][name]["values"]);
      EXPECT_EQ(std::memcmp(expect.get().data, sink.find(name)->get().data, nbytes(expect.get())),
                0)
          << path.filename() << " " << name;
    }
    // zero: group means summed in double here, in float cascades by PyTorch: a few ulp apart in
    // an fp32 compute dtype, usually identical after rounding to bf16/fp16.
    const auto& rz = ref["state_dict"]["zero"]["values"];
    const std::vector<float> z = read_floats(sink.find("zero")->get(), "zero");
    for (size_t j = 0; j < z.size(); ++j) {
      const double want = rz[j].get<double>();
      EXPECT_NEAR(z[j], want, std::ldexp(std::max(1.0, std::fabs(want)), -20))
          << path.filename() << " zero[" << j << "]";
    }
    // W_q: the codes hqq chose.
    const auto& rq = ref["state_dict"]["W_q"]["values"];
    const DLTensor& wq = sink.find("W_q")->get();
    int64_t codes_same = 0;
    for (int64_t i = 0; i < sdk::numel(wq); ++i) {
      const int64_t v = wq.dtype.bits == 32 ? static_cast<const int32_t*>(wq.data)[i]
                                            : static_cast<const uint8_t*>(wq.data)[i];
      codes_same += v == rq[static_cast<size_t>(i)].get<int64_t>() ? 1 : 0;
    }
    EXPECT_GE(static_cast<double>(codes_same) / static_cast<double>(sdk::numel(wq)), 0.999)
        << path.filename() << ": packed W_q elements equal to hqq's";
    TensorList ours;
    copy_outputs(sink, ours);
    const std::vector<float> deq = dequantize(q, m, ours);
    const auto& expect = ref["dequantized"]["values"];
    double worst = 0;
    for (size_t i = 0; i < deq.size(); ++i) {
      worst = std::max(worst, std::fabs(deq[i] - expect[i].get<double>()));
    }
    // One code step is 1 / scale >= 5e-5 (the 2e4 clamp); a zero ulp moves values by far less.
    EXPECT_LT(worst, 1e-6) << path.filename() << ": dequantized values vs hqq's";
    RecordProperty(path.stem().string(), std::to_string(worst));
  }
}

}  // namespace
}  // namespace qforge::plugins::hqq
