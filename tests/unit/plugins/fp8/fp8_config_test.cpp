// FineGrainedFP8Config parsing and to_dict (FORMATS.md §2.6), and the manifest's config_keys.
#include "fp8_config.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "fp8_quantizer.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::fp8 {
namespace {

// Runs parse_fp8_config and returns the error's what() ("" when it parsed).
std::string parse_error(const std::string& json) {
  try {
    parse_fp8_config(json);
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), QF_CODE_INVALID_ARGUMENT) << json;
    return e.what();
  }
  return "";
}

TEST(Fp8Config, DefaultsAreTransformers) {
  const Fp8Config c = parse_fp8_config(R"({"quant_method":"fp8"})");
  EXPECT_EQ(c.activation_scheme, "dynamic");
  ASSERT_TRUE(c.weight_block_size.has_value());
  EXPECT_EQ((*c.weight_block_size)[0], 128);
  EXPECT_EQ((*c.weight_block_size)[1], 128);
  EXPECT_FALSE(c.modules_to_not_convert.has_value());
  EXPECT_FALSE(c.dequantize);
  EXPECT_EQ(c.scale_fmt, "float");
}

TEST(Fp8Config, ReadsADeepSeekV3Block) {
  const Fp8Config c = parse_fp8_config(
      R"({"activation_scheme":"dynamic","fmt":"e4m3","quant_method":"fp8","weight_block_size":[128,128]})");
  EXPECT_EQ(c.activation_scheme, "dynamic");
  EXPECT_EQ((*c.weight_block_size)[1], 128);
}

TEST(Fp8Config, LowerCasesTheSchemeAndAcceptsStaticAndNullBlocks) {
  const Fp8Config c =
      parse_fp8_config(R"({"activation_scheme":"STATIC","weight_block_size":null})");
  EXPECT_EQ(c.activation_scheme, "static");
  EXPECT_FALSE(c.weight_block_size.has_value());
}

TEST(Fp8Config, RefusesWhatPostInitRefusesWithItsMessages) {
  EXPECT_NE(parse_error(R"({"activation_scheme":"per_tensor"})")
                .find("Activation scheme per_tensor not supported"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"weight_block_size":[1,32,32]})")
                .find("weight_block_size must be a tuple of two integers"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"weight_block_size":[0,32]})")
                .find("weight_block_size must be a tuple of two positive integers"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"scale_fmt":"e8m0"})").find("scale_fmt must be 'float' or 'ue8m0'"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"quant_method":"fbgemm_fp8"})").find("quant_method"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"dequantize":"yes"})").find("dequantize"), std::string::npos);
  EXPECT_NE(parse_error("[1]").find("not a JSON object"), std::string::npos);
}

TEST(Fp8Config, IgnoredLayersIsTheV5AliasOfModulesToNotConvert) {
  const Fp8Config c = parse_fp8_config(R"({"ignored_layers":["lm_head","model.layers.0"]})");
  ASSERT_TRUE(c.modules_to_not_convert.has_value());
  EXPECT_EQ(c.modules_to_not_convert->size(), 2u);
}

TEST(Fp8Config, ToDictWritesFineGrainedFP8ConfigsFields) {
  Fp8Config c;
  c.modules_to_not_convert = std::vector<std::string>{"lm_head"};
  const nlohmann::json j = to_quantization_config(c);
  EXPECT_EQ(j, nlohmann::json::parse(
                   R"({"quant_method":"fp8","activation_scheme":"dynamic",
                       "weight_block_size":[128,128],"modules_to_not_convert":["lm_head"],
                       "dequantize":false,"scale_fmt":"float"})"));
  // What postprocess writes parses back to the same config.
  const Fp8Config back = parse_fp8_config(j.dump());
  EXPECT_EQ(to_quantization_config(back), j);
  Fp8Config per_tensor;
  per_tensor.weight_block_size.reset();
  EXPECT_TRUE(to_quantization_config(per_tensor)["weight_block_size"].is_null());
}

TEST(Fp8Config, ManifestListsEveryKeyToDictWritesAndMatchesThePlugin) {
  const YAML::Node manifest = YAML::LoadFile(QFORGE_SOURCE_DIR "/manifests/plugins/fp8.yaml");
  EXPECT_EQ(manifest["id"].as<std::string>(), kPluginId);
  EXPECT_EQ(manifest["version"].as<std::string>(), kPluginVersion);
  const YAML::Node method = manifest["methods"][0];
  EXPECT_EQ(method["quant_method"].as<std::string>(), kMethodFp8);
  std::set<std::string> keys;
  for (const auto& k : method["config_keys"]) keys.insert(k.as<std::string>());
  const nlohmann::json written = to_quantization_config(Fp8Config{});
  ASSERT_TRUE(written.is_object());
  for (auto it = written.begin(); it != written.end(); ++it) {
    EXPECT_TRUE(keys.count(it.key())) << it.key() << " missing from config_keys";
  }
}

TEST(Fp8Config, SkipMatchFollowsModuleBoundaries) {
  const std::vector<std::string> skip{"lm_head", "model.layers.1"};
  EXPECT_TRUE(find_skip_match("lm_head", skip).has_value());
  EXPECT_TRUE(find_skip_match("model.layers.1.mlp.up_proj", skip).has_value());
  EXPECT_FALSE(find_skip_match("model.layers.10.mlp.up_proj", skip).has_value());
  EXPECT_FALSE(find_skip_match("model.layers.0.mlp.up_proj", {""}).has_value());
}

}  // namespace
}  // namespace qforge::plugins::fp8
