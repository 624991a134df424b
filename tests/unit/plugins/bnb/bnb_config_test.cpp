// BitsAndBytesConfig parsing: defaults, accepted spellings and every rejection transformers
// makes (FORMATS.md §2.1).
#include "bnb_config.hpp"

#include <gtest/gtest.h>

#include <string>

#include "unit/plugins/bnb/bnb_test_util.hpp"

namespace qforge::plugins::bnb {
namespace {

using test::expect_error;

BnbConfig parse4(const std::string& json) { return parse_bnb_config(json, BnbBits::k4); }
BnbConfig parse8(const std::string& json) { return parse_bnb_config(json, BnbBits::k8); }

TEST(BnbConfigParse, FillsTransformersDefaults) {
  const BnbConfig c = parse4(test::config_4bit());
  EXPECT_TRUE(c.load_in_4bit);
  EXPECT_FALSE(c.load_in_8bit);
  EXPECT_DOUBLE_EQ(c.llm_int8_threshold, 6.0);
  EXPECT_FALSE(c.llm_int8_skip_modules.has_value());
  EXPECT_FALSE(c.llm_int8_enable_fp32_cpu_offload);
  EXPECT_FALSE(c.llm_int8_has_fp16_weight);
  EXPECT_EQ(c.bnb_4bit_compute_dtype, "float32");
  EXPECT_EQ(c.bnb_4bit_quant_type, "fp4");  // not nf4
  EXPECT_FALSE(c.bnb_4bit_use_double_quant);
  EXPECT_EQ(c.bnb_4bit_quant_storage, "uint8");
}

TEST(BnbConfigParse, ReadsEveryKey) {
  const BnbConfig c = parse4(R"({
    "quant_method": "bitsandbytes", "load_in_4bit": true, "load_in_8bit": false,
    "llm_int8_threshold": 3.5, "llm_int8_skip_modules": ["lm_head", "classifier"],
    "llm_int8_enable_fp32_cpu_offload": true, "llm_int8_has_fp16_weight": true,
    "bnb_4bit_compute_dtype": "bfloat16", "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_use_double_quant": true, "bnb_4bit_quant_storage": "bfloat16"})");
  EXPECT_DOUBLE_EQ(c.llm_int8_threshold, 3.5);
  ASSERT_TRUE(c.llm_int8_skip_modules.has_value());
  EXPECT_EQ(*c.llm_int8_skip_modules, (std::vector<std::string>{"lm_head", "classifier"}));
  EXPECT_TRUE(c.llm_int8_enable_fp32_cpu_offload);
  EXPECT_TRUE(c.llm_int8_has_fp16_weight);
  EXPECT_EQ(c.bnb_4bit_compute_dtype, "bfloat16");
  EXPECT_EQ(c.bnb_4bit_quant_type, "nf4");
  EXPECT_TRUE(c.bnb_4bit_use_double_quant);
  EXPECT_EQ(c.bnb_4bit_quant_storage, "bfloat16");
}

TEST(BnbConfigParse, MethodSetsItsLoadFlagWhenNoneIsGiven) {
  EXPECT_TRUE(parse4(R"({"quant_method": "bitsandbytes_4bit"})").load_in_4bit);
  const BnbConfig c = parse8(R"({"quant_method": "bitsandbytes_8bit"})");
  EXPECT_TRUE(c.load_in_8bit);
  EXPECT_FALSE(c.load_in_4bit);
  EXPECT_TRUE(parse8("{}").load_in_8bit);
}

TEST(BnbConfigParse, AcceptsHfCanonicalAndAliasQuantMethods) {
  for (const char* name : {"bitsandbytes", "bitsandbytes_4bit", "bnb_4bit"}) {
    EXPECT_NO_THROW(parse4(std::string(R"({"quant_method": ")") + name + "\"}")) << name;
  }
  for (const char* name : {"bitsandbytes", "bitsandbytes_8bit", "bnb_8bit", "llm_int8"}) {
    EXPECT_NO_THROW(parse8(std::string(R"({"quant_method": ")") + name + "\"}")) << name;
  }
}

TEST(BnbConfigParse, RejectsTheOtherMethodsName) {
  const auto e = expect_error([] { parse4(R"({"quant_method": "bitsandbytes_8bit"})"); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("cannot configure bitsandbytes_4bit"), std::string::npos);
  EXPECT_NE(e.fix().find("--method bitsandbytes_8bit"), std::string::npos);
}

TEST(BnbConfigParse, RejectsAForeignQuantMethod) {
  const auto e =
      expect_error([] { parse8(R"({"quant_method": "gptq"})"); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("'gptq'"), std::string::npos);
  expect_error([] { parse8(R"({"quant_method": 8})"); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbConfigParse, RejectsBothLoadFlagsWithTransformersText) {
  for (BnbBits bits : {BnbBits::k4, BnbBits::k8}) {
    const auto e = expect_error(
        [&] { parse_bnb_config(R"({"load_in_4bit": true, "load_in_8bit": true})", bits); },
        QF_CODE_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("load_in_4bit and load_in_8bit are both True, but only "
                                         "one can be used at the same time"),
              std::string::npos);
  }
}

TEST(BnbConfigParse, RejectsTheOtherMethodsLoadFlag) {
  const auto e =
      expect_error([] { parse4(R"({"load_in_8bit": true})"); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("selects 8-bit"), std::string::npos);
  expect_error([] { parse8(R"({"load_in_4bit": true})"); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbConfigParse, RejectsIntegerThresholdAsTransformersTypeError) {
  const auto e =
      expect_error([] { parse8(R"({"llm_int8_threshold": 6})"); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("llm_int8_threshold must be a float"), std::string::npos);
  EXPECT_NE(e.why().find("integer 6"), std::string::npos);
  EXPECT_NE(e.fix().find("6.0"), std::string::npos);
}

TEST(BnbConfigParse, RejectsNullAndStringThreshold) {
  expect_error([] { parse8(R"({"llm_int8_threshold": null})"); }, QF_CODE_INVALID_ARGUMENT);
  expect_error([] { parse8(R"({"llm_int8_threshold": "6.0"})"); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbConfigParse, AcceptsNullOrStringListSkipModules) {
  EXPECT_FALSE(parse8(R"({"llm_int8_skip_modules": null})").llm_int8_skip_modules.has_value());
  const BnbConfig empty = parse8(R"({"llm_int8_skip_modules": []})");
  ASSERT_TRUE(empty.llm_int8_skip_modules.has_value());
  EXPECT_TRUE(empty.llm_int8_skip_modules->empty());
}

TEST(BnbConfigParse, RejectsSkipModulesThatAreNotAListOfStrings) {
  const auto e = expect_error([] { parse8(R"({"llm_int8_skip_modules": "lm_head"})"); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("llm_int8_skip_modules must be a list of strings"),
            std::string::npos);
  const auto e2 = expect_error([] { parse8(R"({"llm_int8_skip_modules": ["lm_head", 3]})"); },
                               QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(e2.why().find("element 1"), std::string::npos);
}

TEST(BnbConfigParse, RejectsNonBooleanFlags) {
  for (const char* key : {"load_in_8bit", "load_in_4bit", "llm_int8_enable_fp32_cpu_offload",
                          "llm_int8_has_fp16_weight", "bnb_4bit_use_double_quant", "_load_in_4bit",
                          "_load_in_8bit"}) {
    for (const char* value : {"1", "0", "\"true\"", "null"}) {
      const std::string json = std::string("{\"") + key + "\": " + value + "}";
      const auto e = expect_error([&] { parse4(json); }, QF_CODE_INVALID_ARGUMENT);
      EXPECT_NE(std::string(e.what()).find(std::string(key) + " must be a boolean"),
                std::string::npos)
          << json;
    }
  }
}

TEST(BnbConfigParse, CanonicalizesComputeDtypeNames) {
  EXPECT_EQ(parse4(R"({"bnb_4bit_compute_dtype": "bfloat16"})").bnb_4bit_compute_dtype, "bfloat16");
  EXPECT_EQ(parse4(R"({"bnb_4bit_compute_dtype": "half"})").bnb_4bit_compute_dtype, "float16");
  EXPECT_EQ(parse4(R"({"bnb_4bit_compute_dtype": "float"})").bnb_4bit_compute_dtype, "float32");
  EXPECT_EQ(parse4(R"({"bnb_4bit_compute_dtype": "torch.bfloat16"})").bnb_4bit_compute_dtype,
            "bfloat16");
  EXPECT_EQ(parse4(R"({"bnb_4bit_compute_dtype": null})").bnb_4bit_compute_dtype, "float32");
}

TEST(BnbConfigParse, RejectsComputeDtypeTorchDoesNotHave) {
  const auto e = expect_error([] { parse4(R"({"bnb_4bit_compute_dtype": "bf16"})"); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(e.why().find("'bf16'"), std::string::npos);
  expect_error([] { parse4(R"({"bnb_4bit_compute_dtype": 16})"); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbConfigParse, AcceptsOnlyFp4AndNf4QuantTypes) {
  EXPECT_EQ(parse4(R"({"bnb_4bit_quant_type": "nf4"})").bnb_4bit_quant_type, "nf4");
  EXPECT_EQ(parse4(R"({"bnb_4bit_quant_type": "fp4"})").bnb_4bit_quant_type, "fp4");
  expect_error([] { parse4(R"({"bnb_4bit_quant_type": "NF4"})"); }, QF_CODE_INVALID_ARGUMENT);
  expect_error([] { parse4(R"({"bnb_4bit_quant_type": "int4"})"); }, QF_CODE_INVALID_ARGUMENT);
  const auto e =
      expect_error([] { parse4(R"({"bnb_4bit_quant_type": 4})"); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("must be a string"), std::string::npos);
}

TEST(BnbConfigParse, AcceptsTheSixQuantStorageDtypes) {
  for (const char* s : {"float16", "float32", "int8", "uint8", "float64", "bfloat16"}) {
    EXPECT_EQ(
        parse4(std::string(R"({"bnb_4bit_quant_storage": ")") + s + "\"}").bnb_4bit_quant_storage,
        s);
  }
}

TEST(BnbConfigParse, RejectsOtherQuantStorage) {
  // transformers' test: BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_storage="add").
  const auto e = expect_error([] { parse4(R"({"bnb_4bit_quant_storage": "add"})"); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("must be a valid string (one of 'float16', 'float32', "
                                       "'int8', 'uint8', 'float64', 'bfloat16')"),
            std::string::npos);
  expect_error([] { parse4(R"({"bnb_4bit_quant_storage": 8})"); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbConfigParse, RejectsTextThatIsNotAJsonObject) {
  expect_error([] { parse4("not json"); }, QF_CODE_INVALID_ARGUMENT);
  expect_error([] { parse4("[1, 2]"); }, QF_CODE_INVALID_ARGUMENT);
  expect_error([] { parse4(""); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbConfigParse, IgnoresUnknownKeys) {
  // A typo such as bnb_8bit_quant_type only warns (the host warns, from config_keys).
  EXPECT_NO_THROW(parse8(R"({"load_in_8bit": true, "bnb_8bit_quant_type": "nf4"})"));
}

TEST(BnbConfigJson, RoundTripsThroughToDict) {
  const BnbConfig c = parse4(R"({"load_in_4bit": true, "bnb_4bit_quant_type": "nf4",
      "bnb_4bit_compute_dtype": "half", "llm_int8_skip_modules": ["lm_head"]})");
  const BnbConfig back = parse4(to_quantization_config(c).dump());
  EXPECT_EQ(to_quantization_config(back), to_quantization_config(c));
  EXPECT_EQ(back.bnb_4bit_compute_dtype, "float16");
}

TEST(BnbConfigJson, WritesThresholdAsAFloat) {
  const nlohmann::json j = to_quantization_config(parse8(test::config_8bit()));
  EXPECT_TRUE(j["llm_int8_threshold"].is_number_float());
  EXPECT_NE(j.dump().find("\"llm_int8_threshold\":6.0"), std::string::npos);
}

TEST(BnbTorchDtype, KnowsAliasesAndRejectsStrangers) {
  EXPECT_EQ(canonical_torch_dtype("double"), "float64");
  EXPECT_EQ(canonical_torch_dtype("long"), "int64");
  EXPECT_FALSE(canonical_torch_dtype("nn").has_value());
  EXPECT_FALSE(canonical_torch_dtype("").has_value());
}

}  // namespace
}  // namespace qforge::plugins::bnb
