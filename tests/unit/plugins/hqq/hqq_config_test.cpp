// HqqConfig parsing (constructor and serialized forms), hqq's checks and messages, linear tags,
// dynamic_config and skip_modules resolution, and the quantization_config block.
#include "hqq_config.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>
#include <string>

namespace qforge::plugins::hqq {
namespace {

std::string parse_error(const std::string& json) {
  try {
    (void)parse_hqq_config(json);
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), QF_CODE_INVALID_ARGUMENT);
    return e.what();
  }
  return "";
}

TEST(HqqConfig, DefaultsAreHqqConfigs) {
  const HqqConfig c = parse_hqq_config(R"({"quant_method":"hqq"})");
  ASSERT_TRUE(c.all.has_value());
  EXPECT_EQ(c.all->nbits, 4);
  EXPECT_EQ(c.all->group_size, 64);
  EXPECT_EQ(c.all->axis, 1);
  EXPECT_TRUE(c.all->round_zero);
  EXPECT_TRUE(c.all->optimize);
  EXPECT_EQ(c.skip_modules, std::vector<std::string>{"lm_head"});
}

TEST(HqqConfig, QuantizationConfigIsWhatTransformersWrites) {
  const HqqConfig c = parse_hqq_config(R"({"nbits":3,"group_size":32,"axis":0})");
  // FORMATS.md §2.8: hqq_base_quant_config's dict under quant_config; round_zero only for 4 bits.
  const nlohmann::json expected = nlohmann::json::parse(R"({
    "quant_config": {
      "weight_quant_params": {"nbits": 3, "channel_wise": true, "group_size": 32,
                              "optimize": true, "round_zero": false, "axis": 0,
                              "view_as_float": false},
      "scale_quant_params": null, "zero_quant_params": null, "offload_meta": false},
    "quant_method": "hqq",
    "skip_modules": ["lm_head"]})");
  EXPECT_EQ(to_quantization_config(c), expected);
  EXPECT_TRUE(to_quantization_config(c)["quant_config"]["weight_quant_params"]["nbits"]
                  .is_number_integer());
}

TEST(HqqConfig, SerializedFormReadsBackTheSameParams) {
  for (const char* json : {R"({"nbits":2,"group_size":16,"axis":1})",
                           R"({"nbits":1.58,"group_size":8,"axis":0,"skip_modules":[]})",
                           R"({"dynamic_config":{"self_attn.q_proj":{"nbits":4},
                                                 "mlp.down_proj":{"nbits":3,"group_size":32}}})"}) {
    const HqqConfig a = parse_hqq_config(json);
    const nlohmann::json written = to_quantization_config(a);
    const HqqConfig b = parse_hqq_config(written.dump());
    EXPECT_EQ(to_quantization_config(b), written) << json;
    EXPECT_EQ(a.per_tag.size(), b.per_tag.size());
    if (a.all) {
      EXPECT_EQ(b.all->nbits, a.all->nbits);
      EXPECT_EQ(b.all->group_size, a.all->group_size);
      EXPECT_EQ(b.all->axis, a.all->axis);
      EXPECT_EQ(b.all->round_zero, a.all->round_zero);
    }
  }
}

TEST(HqqConfig, RefusesWithHqqsMessages) {
  EXPECT_NE(parse_error(R"({"nbits":7})").find("nbits value not supported"), std::string::npos);
  EXPECT_NE(parse_error(R"({"group_size":60})").find("should be a multiple of 8"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"group_size":0})").find("multiple of 8"), std::string::npos);
  EXPECT_NE(parse_error(R"({"axis":2})").find("Invalid axis value. Only 0 and 1 are allowed."),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"dynamic_config":{"mlp.up_proj":{"bits":4}}})")
                .find("unexpected keyword argument 'bits'"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"quant_method":"gptq"})").find("quant_method"), std::string::npos);
  EXPECT_EQ(parse_error(R"({"nbits":5,"group_size":null})"), "");
}

TEST(HqqConfig, LinearTagsDropModelLayersAndIndices) {
  EXPECT_EQ(linear_tag("model.layers.31.self_attn.k_proj"), "self_attn.k_proj");
  EXPECT_EQ(linear_tag("lm_head"), "lm_head");
  EXPECT_EQ(linear_tag("model.decoder.layers.0.fc1"), "decoder.fc1");
}

TEST(HqqConfig, SkipModulesAndDynamicConfigSelectLayers) {
  const HqqConfig all = parse_hqq_config("{}");
  std::string reason;
  EXPECT_TRUE(params_for(all, "model.layers.0.mlp.up_proj", reason).has_value());
  EXPECT_FALSE(params_for(all, "lm_head", reason).has_value());
  EXPECT_NE(reason.find("skip_modules"), std::string::npos);

  const HqqConfig dyn = parse_hqq_config(
      R"({"dynamic_config":{"self_attn.q_proj":{"nbits":4},"mlp.down_proj":{"nbits":3}}})");
  auto q = params_for(dyn, "model.layers.3.self_attn.q_proj", reason);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->nbits, 4);
  EXPECT_TRUE(q->round_zero);
  auto d = params_for(dyn, "model.layers.3.mlp.down_proj", reason);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->nbits, 3);
  EXPECT_FALSE(d->round_zero);
  // A tag the per-tag map does not name is not quantized (transformers' patch_params None).
  EXPECT_FALSE(params_for(dyn, "model.layers.3.mlp.up_proj", reason).has_value());
}

TEST(HqqConfig, MaxCodeAndPacking) {
  EXPECT_EQ(max_code(4), 15);
  EXPECT_EQ(max_code(3), 7);
  EXPECT_EQ(max_code(1.58), 2);
  EXPECT_EQ(max_code(6), 63);
  EXPECT_EQ(packing_for(6), "8bit_u8");
  EXPECT_EQ(packing_for(5), "8bit_u8");
  EXPECT_EQ(packing_for(1.58), "2bit_u8");
  EXPECT_EQ(packing_for(3), "3bit_32");
  EXPECT_EQ(packing_for(1), "1bit_u8");
}

}  // namespace
}  // namespace qforge::plugins::hqq
