// describe_quantized and check_quantized: the Linear4bit / Linear8bitLt state-dict layouts of
// FORMATS.md §2.2-2.3, and the quant_state blob bytes.
#include "bnb_layout.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "bnb_quantizer.hpp"
#include "unit/plugins/bnb/bnb_test_util.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::bnb {
namespace {

using nlohmann::json;
using qforge::test::Module;
using qforge::test::TensorList;
using test::expect_error;

const TensorSpec* find(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const auto& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<std::string> names(const std::vector<TensorSpec>& specs) {
  std::vector<std::string> out;
  for (const auto& s : specs) out.push_back(s.name);
  return out;
}

// Fills `list` with zero tensors shaped as `specs` describe.
void add_all(TensorList& list, const std::vector<TensorSpec>& specs) {
  for (const auto& s : specs) list.add(s.name, s.dtype, s.shape);
}

BnbConfig config4(const std::string& extra = "") {
  return parse_bnb_config(R"({"load_in_4bit": true)" + extra + "}", BnbBits::k4);
}

bool same(DLDataType a, DLDataType b) { return sdk::same_dtype(a, b); }

TEST(BnbQuantState, WritesPythonJsonDumpsBytes) {
  QuantStateFields f;
  f.quant_type = "nf4";
  f.dtype = "bfloat16";
  f.out_features = 4096;
  f.in_features = 11008;
  EXPECT_EQ(
      quant_state_json(f),
      R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 11008]})");
}

TEST(BnbQuantState, WritesNestedFieldsWithAFixedWidthOffset) {
  QuantStateFields f;
  f.quant_type = "fp4";
  f.dtype = "float16";
  f.out_features = 3;
  f.in_features = 5;
  f.nested_offset = 0.1f;
  const std::string blob = quant_state_json(f);
  EXPECT_EQ(blob.substr(0, blob.find("\"nested_offset\"")),
            R"({"quant_type": "fp4", "blocksize": 64, "dtype": "float16", "shape": [3, 5], )"
            R"("nested_blocksize": 256, "nested_dtype": "float32", )");
  // The offset parses to exactly the float32 value, as Python's repr would.
  const json parsed = json::parse(blob);
  EXPECT_EQ(parsed["nested_offset"].get<double>(), static_cast<double>(0.1f));
  for (float v : {0.0f, 0.5f, 1e-7f, 3.4e38f, 1.17549435e-38f, 123.456f}) {
    f.nested_offset = v;
    EXPECT_EQ(quant_state_json(f).size(), blob.size()) << v;
    EXPECT_EQ(json::parse(quant_state_json(f))["nested_offset"].get<double>(),
              static_cast<double>(v));
  }
}

TEST(BnbQuantState, RejectsANonFiniteOffset) {
  QuantStateFields f;
  f.quant_type = "nf4";
  f.dtype = "float16";
  f.nested_offset = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { quant_state_json(f); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbDescribe4Bit, PacksAnOddElementCountIntoHalfBytesRoundedUp) {
  Module m("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 3, 5);  // n = 15
  const auto specs = describe_4bit(config4(R"(, "bnb_4bit_quant_type": "nf4")"), m.get());
  EXPECT_EQ(names(specs), (std::vector<std::string>{"weight", "weight.absmax", "weight.quant_map",
                                                    "weight.quant_state.bitsandbytes__nf4"}));
  EXPECT_EQ(find(specs, "weight")->shape, (std::vector<int64_t>{8, 1}));
  EXPECT_TRUE(same(find(specs, "weight")->dtype, qforge::test::u8()));
  EXPECT_EQ(find(specs, "weight.absmax")->shape, (std::vector<int64_t>{1}));
  EXPECT_TRUE(same(find(specs, "weight.absmax")->dtype, qforge::test::f32()));
  EXPECT_EQ(find(specs, "weight.quant_map")->shape, (std::vector<int64_t>{16}));
  const std::string blob =
      R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [3, 5]})";
  EXPECT_EQ(find(specs, "weight.quant_state.bitsandbytes__nf4")->shape,
            (std::vector<int64_t>{static_cast<int64_t>(blob.size())}));
}

TEST(BnbDescribe4Bit, CountsAPartialLastBlock) {
  Module m("fc", QF_MODULE_LINEAR, 10, 13, true, qforge::test::bf16());  // n = 130
  const auto specs = describe_4bit(config4(), m.get());
  EXPECT_EQ(find(specs, "weight")->shape, (std::vector<int64_t>{65, 1}));
  EXPECT_EQ(find(specs, "weight.absmax")->shape, (std::vector<int64_t>{3}));  // ceil(130 / 64)
  ASSERT_NE(find(specs, "weight.quant_state.bitsandbytes__fp4"), nullptr);    // default fp4
  const std::string blob =
      R"({"quant_type": "fp4", "blocksize": 64, "dtype": "bfloat16", "shape": [10, 13]})";
  EXPECT_EQ(find(specs, "weight.quant_state.bitsandbytes__fp4")->shape[0],
            static_cast<int64_t>(blob.size()));
  // The bias is stored unchanged by the host, not written by quantize.
  EXPECT_EQ(find(specs, "bias"), nullptr);
}

TEST(BnbDescribe4Bit, AddsNestedStatisticsWithDoubleQuant) {
  Module m("fc", QF_MODULE_LINEAR, 300, 64);  // n = 19200 -> 300 blocks -> 2 nested blocks
  const auto specs = describe_4bit(
      config4(R"(, "bnb_4bit_use_double_quant": true, "bnb_4bit_quant_type": "nf4")"), m.get());
  EXPECT_EQ(names(specs), (std::vector<std::string>{
                              "weight", "weight.absmax", "weight.quant_map", "weight.nested_absmax",
                              "weight.nested_quant_map", "weight.quant_state.bitsandbytes__nf4"}));
  EXPECT_TRUE(same(find(specs, "weight.absmax")->dtype, qforge::test::u8()));
  EXPECT_EQ(find(specs, "weight.absmax")->shape, (std::vector<int64_t>{300}));
  EXPECT_EQ(find(specs, "weight.nested_absmax")->shape, (std::vector<int64_t>{2}));
  EXPECT_TRUE(same(find(specs, "weight.nested_absmax")->dtype, qforge::test::f32()));
  EXPECT_EQ(find(specs, "weight.nested_quant_map")->shape, (std::vector<int64_t>{256}));
  QuantStateFields f{"nf4", 64, "float16", 300, 64, 0.0123f};
  EXPECT_EQ(find(specs, "weight.quant_state.bitsandbytes__nf4")->shape[0],
            static_cast<int64_t>(quant_state_json(f).size()));
}

TEST(BnbDescribe4Bit, SizesWiderQuantStorage) {
  Module m("fc", QF_MODULE_LINEAR, 10, 13);  // n = 130
  const auto f32 = describe_4bit(config4(R"(, "bnb_4bit_quant_storage": "float32")"), m.get());
  EXPECT_EQ(find(f32, "weight")->shape, (std::vector<int64_t>{16, 1}));  // 131 // 8
  EXPECT_TRUE(same(find(f32, "weight")->dtype, qforge::test::f32()));
  const auto bf = describe_4bit(config4(R"(, "bnb_4bit_quant_storage": "bfloat16")"), m.get());
  EXPECT_EQ(find(bf, "weight")->shape, (std::vector<int64_t>{32, 1}));  // 131 // 4
  EXPECT_TRUE(same(find(bf, "weight")->dtype, qforge::test::bf16()));
}

TEST(BnbDescribe4Bit, RejectsNonFloatWeightsAndImpossibleShapes) {
  Module ints("fc", QF_MODULE_LINEAR, 4, 4, false, qforge::test::i8());
  expect_error([&] { describe_4bit(config4(), ints.get()); }, QF_CODE_INVALID_ARGUMENT);
  Module empty("fc", QF_MODULE_LINEAR, 0, 4);
  expect_error([&] { describe_4bit(config4(), empty.get()); }, QF_CODE_INVALID_ARGUMENT);
  Module huge("fc", QF_MODULE_LINEAR, int64_t{1} << 40, int64_t{1} << 40);
  expect_error([&] { describe_4bit(config4(), huge.get()); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbDescribe8Bit, ListsWeightScbAndFormatButNotTheBias) {
  Module m("fc", QF_MODULE_LINEAR, 6, 10, true);
  const auto specs = describe_8bit(m.get());
  EXPECT_EQ(names(specs), (std::vector<std::string>{"weight", "SCB", "weight_format"}));
  EXPECT_TRUE(same(find(specs, "weight")->dtype, qforge::test::i8()));
  EXPECT_EQ(find(specs, "weight")->shape, (std::vector<int64_t>{6, 10}));
  EXPECT_TRUE(same(find(specs, "SCB")->dtype, qforge::test::f32()));
  EXPECT_EQ(find(specs, "SCB")->shape, (std::vector<int64_t>{6}));
  EXPECT_TRUE(same(find(specs, "weight_format")->dtype, qforge::test::u8()));
  EXPECT_TRUE(find(specs, "weight_format")->shape.empty());
}

TEST(BnbDescribe, WritesSafetensorsDtypeNames) {
  Bnb8BitQuantizer q(test::config_8bit());
  Module m("fc", QF_MODULE_LINEAR, 2, 3);
  const json j = json::parse(q.describe_quantized(m.get()));
  ASSERT_EQ(j["tensors"].size(), 3u);
  EXPECT_EQ(j["tensors"][0], (json{{"name", "weight"}, {"dtype", "I8"}, {"shape", {2, 3}}}));
  EXPECT_EQ(j["tensors"][2],
            (json{{"name", "weight_format"}, {"dtype", "U8"}, {"shape", json::array()}}));
}

// ---------------------------------------------------------------- check_quantized, 4-bit

class BnbCheck4Bit : public ::testing::Test {
 protected:
  // A checkpoint's tensors: what quantize writes plus the bias the host stores.
  void build(const BnbConfig& config, const Module& m) {
    add_all(list_, describe_4bit(config, m.get()));
    if (m.get().has_bias != 0) list_.add("bias", m.get().weight_dtype, {m.get().out_features});
  }
  BnbConfig config_ = config4(R"(, "bnb_4bit_quant_type": "nf4")");
  Module module_{"model.layers.0.self_attn.q_proj", QF_MODULE_LINEAR, 10, 13, true};
  TensorList list_;
};

TEST_F(BnbCheck4Bit, AcceptsWhatDescribeAnnounces) {
  build(config_, module_);
  EXPECT_NO_THROW(check_4bit(config_, module_.get(), list_.get()));
}

TEST_F(BnbCheck4Bit, AcceptsDoubleQuantTensors) {
  const BnbConfig dq = config4(R"(, "bnb_4bit_use_double_quant": true)");
  build(dq, module_);
  EXPECT_NO_THROW(check_4bit(dq, module_.get(), list_.get()));
}

TEST_F(BnbCheck4Bit, AcceptsAbsmaxOfAnotherBitsandbytesBlocksize) {
  build(config_, module_);
  list_.remove("weight.absmax");
  list_.add("weight.absmax", qforge::test::f32(), {2});  // blocksize 128: ceil(130 / 128)
  EXPECT_NO_THROW(check_4bit(config_, module_.get(), list_.get()));
}

TEST_F(BnbCheck4Bit, RejectsAnEmptyList) {
  const auto e = expect_error([&] { check_4bit(config_, module_.get(), list_.get()); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("'weight'"), std::string::npos);
}

TEST_F(BnbCheck4Bit, RejectsEachMissingComponent) {
  for (const char* missing : {"weight.absmax", "weight.quant_map"}) {
    TensorList list;
    add_all(list, describe_4bit(config_, module_.get()));
    list.remove(missing);
    const auto e = expect_error([&] { check_4bit(config_, module_.get(), list.get()); },
                                QF_CODE_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
}

TEST_F(BnbCheck4Bit, RequiresExactlyOneQuantState) {
  build(config_, module_);
  list_.remove("weight.quant_state.bitsandbytes__nf4");
  auto e = expect_error([&] { check_4bit(config_, module_.get(), list_.get()); },
                        QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("There should be exactly one `quant_state` item with "
                                       "ending from ['bitsandbytes__fp4', 'bitsandbytes__nf4']"),
            std::string::npos);
  list_.add("weight.quant_state.bitsandbytes__nf4", qforge::test::u8(), {10});
  list_.add("weight.quant_state.bitsandbytes__fp4", qforge::test::u8(), {10});
  e = expect_error([&] { check_4bit(config_, module_.get(), list_.get()); },
                   QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(e.why().find("bitsandbytes__fp4"), std::string::npos);
  list_.remove("weight.quant_state.bitsandbytes__nf4");
  list_.remove("weight.quant_state.bitsandbytes__fp4");
  list_.add("weight.quant_state.bitsandbytes__int4", qforge::test::u8(), {10});
  expect_error([&] { check_4bit(config_, module_.get(), list_.get()); }, QF_CODE_INVALID_ARGUMENT);
}

TEST_F(BnbCheck4Bit, RejectsTensorsOutsideTheQuantStateKeySet) {
  build(config_, module_);
  list_.add("weight.code", qforge::test::f32(), {16});  // the pre-PR #753 name
  expect_error([&] { check_4bit(config_, module_.get(), list_.get()); }, QF_CODE_INVALID_ARGUMENT);
  TensorList eight_bit;
  add_all(eight_bit, describe_4bit(config_, module_.get()));
  eight_bit.add("SCB", qforge::test::f32(), {10});
  const auto e = expect_error([&] { check_4bit(config_, module_.get(), eight_bit.get()); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("'SCB'"), std::string::npos);
}

TEST_F(BnbCheck4Bit, RejectsADenseWeight) {
  build(config_, module_);
  list_.remove("weight");
  list_.add("weight", qforge::test::u8(), {10, 13});
  const auto e = expect_error([&] { check_4bit(config_, module_.get(), list_.get()); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(e.why().find("[65, 1]"), std::string::npos) << e.why();
}

TEST_F(BnbCheck4Bit, RejectsAWeightThatIsNotTheQuantStorageDtype) {
  build(config_, module_);
  list_.remove("weight");
  list_.add("weight", qforge::test::f16(), {65, 1});
  const auto e = expect_error([&] { check_4bit(config_, module_.get(), list_.get()); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(e.why().find("got F16, expected U8"), std::string::npos) << e.why();
}

TEST_F(BnbCheck4Bit, RejectsAbsmaxOfTheWrongDtype) {
  build(config_, module_);
  list_.remove("weight.absmax");
  list_.add("weight.absmax", qforge::test::u8(), {3});  // u8 without nested statistics
  expect_error([&] { check_4bit(config_, module_.get(), list_.get()); }, QF_CODE_INVALID_ARGUMENT);
}

TEST_F(BnbCheck4Bit, RejectsHalfOfTheNestedStatistics) {
  const BnbConfig dq = config4(R"(, "bnb_4bit_use_double_quant": true)");
  build(dq, module_);
  list_.remove("weight.nested_quant_map");
  const auto e =
      expect_error([&] { check_4bit(dq, module_.get(), list_.get()); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("nested_quant_map"), std::string::npos);
}

TEST_F(BnbCheck4Bit, RejectsAMalformedQuantStateBlob) {
  build(config_, module_);
  list_.remove("weight.quant_state.bitsandbytes__nf4");
  list_.add("weight.quant_state.bitsandbytes__nf4", qforge::test::f32(), {4});
  expect_error([&] { check_4bit(config_, module_.get(), list_.get()); }, QF_CODE_INVALID_ARGUMENT);
}

TEST_F(BnbCheck4Bit, AcceptsAMissingBiasButRejectsAMisshapenOrUnexpectedOne) {
  build(config_, module_);
  list_.remove("bias");  // quantize's own outputs: the host keeps the bias
  EXPECT_NO_THROW(check_4bit(config_, module_.get(), list_.get()));
  list_.add("bias", qforge::test::f16(), {11});
  expect_error([&] { check_4bit(config_, module_.get(), list_.get()); }, QF_CODE_INVALID_ARGUMENT);
  Module no_bias("fc", QF_MODULE_LINEAR, 10, 13, false);
  TensorList with_bias;
  add_all(with_bias, describe_4bit(config_, module_.get()));
  with_bias.add("bias", qforge::test::f16(), {10});
  expect_error([&] { check_4bit(config_, no_bias.get(), with_bias.get()); },
               QF_CODE_INVALID_ARGUMENT);
}

// ---------------------------------------------------------------- check_quantized, 8-bit

TEST(BnbCheck8Bit, AcceptsWhatDescribeAnnounces) {
  Module m("fc", QF_MODULE_LINEAR, 6, 10, true);
  TensorList list;
  add_all(list, describe_8bit(m.get()));
  EXPECT_NO_THROW(check_8bit(m.get(), list.get()));
  list.remove("weight_format");  // checkpoints from bitsandbytes < 0.41 have none
  EXPECT_NO_THROW(check_8bit(m.get(), list.get()));
}

TEST(BnbCheck8Bit, RejectsANonInt8WeightWithTransformersText) {
  Module m("fc", QF_MODULE_LINEAR, 6, 10);
  TensorList list;
  list.add("weight", qforge::test::f16(), {6, 10});
  list.add("SCB", qforge::test::f32(), {6});
  const auto e = expect_error([&] { check_8bit(m.get(), list.get()); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("Incompatible dtype `torch.float16` when loading 8-bit "
                                       "prequantized weight. Expected `torch.int8`."),
            std::string::npos)
      << e.what();
}

TEST(BnbCheck8Bit, RejectsAMissingScb) {
  Module m("fc", QF_MODULE_LINEAR, 6, 10);
  TensorList list;
  list.add("weight", qforge::test::i8(), {6, 10});
  const auto e = expect_error([&] { check_8bit(m.get(), list.get()); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("Missing quantization component `SCB`"), std::string::npos);
}

TEST(BnbCheck8Bit, RejectsWrongShapes) {
  Module m("fc", QF_MODULE_LINEAR, 6, 10);
  TensorList bad_weight;
  bad_weight.add("weight", qforge::test::i8(), {10, 6});
  bad_weight.add("SCB", qforge::test::f32(), {6});
  expect_error([&] { check_8bit(m.get(), bad_weight.get()); }, QF_CODE_INVALID_ARGUMENT);
  TensorList bad_scb;
  bad_scb.add("weight", qforge::test::i8(), {6, 10});
  bad_scb.add("SCB", qforge::test::f32(), {10});
  expect_error([&] { check_8bit(m.get(), bad_scb.get()); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbCheck8Bit, AcceptsOnlyRowWeightFormat) {
  Module m("fc", QF_MODULE_LINEAR, 6, 10);
  TensorList list;
  add_all(list, describe_8bit(m.get()));
  list.remove("weight_format");
  list.add("weight_format", qforge::test::u8(), {}).data<uint8_t>()[0] = 2;
  const auto e = expect_error([&] { check_8bit(m.get(), list.get()); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("Only 'row' weight format is supported"), std::string::npos);
  EXPECT_NE(e.why().find("col_turing"), std::string::npos);
}

TEST(BnbCheck8Bit, RejectsFourBitComponents) {
  Module m("fc", QF_MODULE_LINEAR, 6, 10);
  TensorList list;
  add_all(list, describe_8bit(m.get()));
  list.add("weight.absmax", qforge::test::f32(), {1});
  const auto e = expect_error([&] { check_8bit(m.get(), list.get()); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("'weight.absmax'"), std::string::npos);
}

}  // namespace
}  // namespace qforge::plugins::bnb
