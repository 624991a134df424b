// GPTQConfig semantics (FORMATS.md §2.4): defaults, transformers' checks and messages, the
// checkpoint_format check, and to_dict as transformers writes it (tests/reference/gptq).
#include "gptq_config.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>
#include <string>

namespace qforge::plugins::gptq {
namespace {

std::string error_of(const std::string& json) {
  try {
    parse_gptq_config(json);
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), QF_CODE_INVALID_ARGUMENT);
    return e.what();
  }
  return "";
}

TEST(GptqConfig, DefaultsAreGptqConfigs) {
  const GptqConfig c = parse_gptq_config(R"({"bits":4})");
  EXPECT_EQ(c.group_size, 128);
  EXPECT_DOUBLE_EQ(c.damp_percent, 0.1);
  EXPECT_FALSE(c.desc_act);
  EXPECT_TRUE(c.sym);
  EXPECT_TRUE(c.true_sequential);
  EXPECT_EQ(c.checkpoint_format, "gptq");
  EXPECT_FALSE(c.v2());
}

TEST(GptqConfig, BadValuesGetTheirOwnMessages) {
  EXPECT_NE(error_of(R"({"bits":5})")
                .find("Only support quantization to [2,3,4,8] bits but "
                      "found 5"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"bits":4,"group_size":0})")
                .find("group_size must be greater than 0 or equal to -1"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"bits":4,"damp_percent":1})").find("damp_percent must between 0 and 1."),
            std::string::npos);
  EXPECT_NE(error_of(R"({"bits":4,"damp_percent":0})").find("damp_percent"), std::string::npos);
  EXPECT_NE(error_of(R"({"bits":4,"checkpoint_format":"marlin"})")
                .find("unknown checkpoint format \"marlin\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"bits":4,"dataset":"ptb"})").find("but we found ptb"), std::string::npos);
  EXPECT_NE(error_of(R"({"bits":4,"dataset":3})").find("dataset needs to be either"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"group_size":128})").find("bits is missing"), std::string::npos);
  EXPECT_NE(error_of(R"({"bits":4,"modules_in_block_to_quantize":["q_proj"]})")
                .find("each entry must be a list"),
            std::string::npos);
}

TEST(GptqConfig, FormatDecidesV2AndIsLowerCased) {
  EXPECT_TRUE(parse_gptq_config(R"({"bits":4,"checkpoint_format":"GPTQ_V2"})").v2());
  EXPECT_TRUE(parse_gptq_config(R"({"bits":4,"format":"gptq_v2"})").v2());
  EXPECT_FALSE(
      parse_gptq_config(R"({"bits":4,"format":"gptq_v2","checkpoint_format":"gptq"})").v2());
}

TEST(GptqConfig, DescActDisablesActGroupAware) {
  EXPECT_FALSE(parse_gptq_config(R"({"bits":4,"desc_act":true})").act_group_aware);
}

TEST(GptqConfig, ToDictEqualsTransformers) {
  std::ifstream f(std::string(QFORGE_SOURCE_DIR) +
                  "/tests/reference/gptq/gptqconfig_bits4_to_dict.json");
  const nlohmann::json expected = nlohmann::json::parse(f);
  const nlohmann::json got =
      nlohmann::json::parse(to_quantization_config(parse_gptq_config(R"({"bits":4})")).dump());
  EXPECT_EQ(got, expected);
}

TEST(GptqConfig, RoundTripsOptimumsDict) {
  const std::string optimum =
      R"({"bits":3,"dataset":["a text"],"group_size":-1,"damp_percent":0.01,"desc_act":true,)"
      R"("sym":false,"true_sequential":false,"quant_method":"gptq",)"
      R"("modules_in_block_to_quantize":[["self_attn.q_proj"],["mlp.up_proj"]],)"
      R"("checkpoint_format":"gptq_v2","meta":{"quantizer":["optimum:1.24.0"]}})";
  const GptqConfig c = parse_gptq_config(optimum);
  const nlohmann::json out = nlohmann::json::parse(to_quantization_config(c).dump());
  const nlohmann::json in = nlohmann::json::parse(optimum);
  for (const auto& [key, value] : in.items()) EXPECT_EQ(out[key], value) << key;
  EXPECT_EQ(c.groups(96), 1);
}

}  // namespace
}  // namespace qforge::plugins::gptq
