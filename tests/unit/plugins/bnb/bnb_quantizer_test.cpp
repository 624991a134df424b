// The configuration hooks of the bitsandbytes quantizers, called on the C++ classes.
#include "bnb_quantizer.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "unit/plugins/bnb/bnb_test_util.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::bnb {
namespace {

using nlohmann::json;
using qforge::test::Module;
using test::expect_error;

TEST(BnbUpdateDtype, DefaultsToFloat16AndSaysSo) {
  qforge::test::TestHost host;
  sdk::g_host = host.api();  // what qf_plugin_entry does
  Bnb4BitQuantizer q(test::config_4bit());
  EXPECT_EQ(q.update_dtype(""), "float16");
  const auto logs = host.logs();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].level, QF_LOG_INFO);
  EXPECT_NE(logs[0].message.find("Overriding dtype=None with `dtype=torch.float16`"),
            std::string::npos);
}

TEST(BnbUpdateDtype, KeepsAGivenDtype) {
  Bnb8BitQuantizer q(test::config_8bit());
  EXPECT_EQ(q.update_dtype("bfloat16"), "bfloat16");
  EXPECT_EQ(q.update_dtype("float32"), "float32");
}

TEST(BnbUpdateDeviceMap, DefaultsToTheFirstCudaDeviceTheEnvironmentHas) {
  Bnb4BitQuantizer q(test::config_4bit());
  q.validate_environment(test::a100_env(), test::request(nullptr));
  EXPECT_EQ(json::parse(q.update_device_map("null")), (json{{"", "cuda:0"}}));
  EXPECT_EQ(json::parse(q.update_device_map("")), (json{{"", "cuda:0"}}));
}

TEST(BnbUpdateDeviceMap, DefaultsToCpuWithoutCuda) {
  Bnb8BitQuantizer q(test::config_8bit());
  q.validate_environment(test::no_gpu_env(), test::request(nullptr));
  EXPECT_EQ(json::parse(q.update_device_map("null")), (json{{"", "cpu"}}));
}

TEST(BnbUpdateDeviceMap, DefaultsToCpuBeforeAnyEnvironmentIsKnown) {
  Bnb8BitQuantizer q(test::config_8bit());
  EXPECT_EQ(json::parse(q.update_device_map("null")), (json{{"", "cpu"}}));
}

TEST(BnbUpdateDeviceMap, FollowsTheRequestedDevice) {
  Bnb4BitQuantizer q(test::config_4bit());
  const std::string two_gpus =
      test::env_json({test::cuda_gpu(0, "A100", "8.0"), test::cuda_gpu(1, "A100", "8.0")});
  q.validate_environment(two_gpus, test::request("cuda:1"));
  EXPECT_EQ(json::parse(q.update_device_map("null")), (json{{"", "cuda:1"}}));
  q.validate_environment(two_gpus, test::request("cpu"));
  EXPECT_EQ(json::parse(q.update_device_map("null")), (json{{"", "cpu"}}));
}

TEST(BnbUpdateDeviceMap, KeepsAGivenMapUnchanged) {
  Bnb4BitQuantizer q(test::config_4bit());
  q.validate_environment(test::a100_env(), test::request("cuda:0"));
  const std::string map = R"({"model.layers.0": "cuda:0", "lm_head": "cpu"})";
  EXPECT_EQ(q.update_device_map(map), map);
  expect_error([&] { q.update_device_map("{oops"); }, QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbAdjustMaxMemory, ScalesEveryBudgetByNinetyPercent) {
  Bnb8BitQuantizer q(test::config_8bit());
  const json out = json::parse(q.adjust_max_memory(R"({"cpu": 1000000, "cuda:0": 15})"));
  EXPECT_EQ(out, (json{{"cpu", 900000}, {"cuda:0", 13}}));  // 13.5 floors to 13
  EXPECT_TRUE(out["cuda:0"].is_number_integer());
}

TEST(BnbAdjustMaxMemory, KeepsFloatsFloatAndLargeIntegersExact) {
  Bnb4BitQuantizer q(test::config_4bit());
  const json out = json::parse(q.adjust_max_memory(
      R"({"cpu": 100.0, "cuda:0": 9223372036854775807, "cuda:1": 18446744073709551615})"));
  EXPECT_TRUE(out["cpu"].is_number_float());
  EXPECT_DOUBLE_EQ(out["cpu"].get<double>(), 90.0);
  EXPECT_EQ(out["cuda:0"].get<int64_t>(), 8301034833169298226LL);     // floor(0.9 * (2^63 - 1))
  EXPECT_EQ(out["cuda:1"].get<uint64_t>(), 16602069666338596453ULL);  // floor(0.9 * (2^64 - 1))
}

TEST(BnbAdjustMaxMemory, RejectsBudgetsThatAreNotNumbers) {
  Bnb4BitQuantizer q(test::config_4bit());
  const auto e = expect_error([&] { q.adjust_max_memory(R"({"cuda:0": "10GiB"})"); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("'cuda:0'"), std::string::npos);
  expect_error([&] { q.adjust_max_memory("[1, 2]"); }, QF_CODE_INVALID_ARGUMENT);
  EXPECT_EQ(q.adjust_max_memory("null"), "null");
}

TEST(BnbScaleBudget, FloorsNinetyPercentExactly) {
  EXPECT_EQ(scale_budget(0), 0);
  EXPECT_EQ(scale_budget(1), 0);
  EXPECT_EQ(scale_budget(10), 9);
  EXPECT_EQ(scale_budget(19), 17);    // 17.1
  EXPECT_EQ(scale_budget(-15), -14);  // floor(-13.5)
}

TEST(BnbNeedsQuantization, QuantizesLinearAndConv1dLayers) {
  Bnb4BitQuantizer q(test::config_4bit());
  std::string reason;
  EXPECT_TRUE(q.needs_quantization(
      Module("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 8, 4).get(), reason));
  EXPECT_TRUE(
      q.needs_quantization(Module("h.0.attn.c_attn", QF_MODULE_CONV1D, 8, 4).get(), reason));
}

TEST(BnbNeedsQuantization, SkipsLayersThatAreNotLinear) {
  Bnb8BitQuantizer q(test::config_8bit());
  for (int32_t kind : {QF_MODULE_EMBEDDING, QF_MODULE_OTHER}) {
    std::string reason;
    EXPECT_FALSE(q.needs_quantization(Module("model.embed_tokens", kind, 8, 4).get(), reason));
    EXPECT_EQ(reason, "not a linear layer");
  }
}

TEST(BnbNeedsQuantization, SkipsModulesListedInSkipModules) {
  Bnb4BitQuantizer q(R"({"load_in_4bit": true, "llm_int8_skip_modules": ["lm_head"]})");
  std::string reason;
  EXPECT_FALSE(q.needs_quantization(Module("lm_head", QF_MODULE_LINEAR, 8, 4).get(), reason));
  EXPECT_EQ(reason, "listed in llm_int8_skip_modules ('lm_head')");
  reason.clear();
  // The module's own name matches at any depth (BLIP-2's language_model.lm_head).
  EXPECT_FALSE(
      q.needs_quantization(Module("language_model.lm_head", QF_MODULE_LINEAR, 8, 4).get(), reason));
  EXPECT_EQ(reason, "listed in llm_int8_skip_modules ('lm_head')");
  EXPECT_TRUE(q.needs_quantization(
      Module("model.layers.0.lm_head_proj", QF_MODULE_LINEAR, 8, 4).get(), reason));
}

TEST(BnbNeedsQuantization, MatchesPathPrefixesOnlyAtDots) {
  Bnb8BitQuantizer q(R"({"load_in_8bit": true, "llm_int8_skip_modules": ["model.layers.1"]})");
  std::string reason;
  EXPECT_FALSE(q.needs_quantization(
      Module("model.layers.1.mlp.up_proj", QF_MODULE_LINEAR, 8, 4).get(), reason));
  EXPECT_EQ(reason, "listed in llm_int8_skip_modules ('model.layers.1')");
  EXPECT_TRUE(q.needs_quantization(
      Module("model.layers.10.mlp.up_proj", QF_MODULE_LINEAR, 8, 4).get(), reason));
  EXPECT_FALSE(
      q.needs_quantization(Module("model.layers.1", QF_MODULE_LINEAR, 8, 4).get(), reason));
}

TEST(BnbFindSkipMatch, FollowsTransformersRules) {
  const std::vector<std::string> skip = {"fc1", "decoder.layers.2", "classifier"};
  EXPECT_EQ(find_skip_match("model.decoder.layers.23.fc1", skip), "fc1");
  EXPECT_EQ(find_skip_match("model.decoder.layers.2.fc2", skip), "decoder.layers.2");
  EXPECT_FALSE(find_skip_match("model.decoder.layers.23.fc2", skip).has_value());
  EXPECT_FALSE(find_skip_match("model.decoder.layers.2x.fc2", skip).has_value());
  EXPECT_EQ(find_skip_match("classifier", skip), "classifier");
  EXPECT_FALSE(find_skip_match("model.fc10", skip).has_value());
  EXPECT_FALSE(find_skip_match("model.layers.0", {""}).has_value());
}

TEST(BnbNeedsQuantization, QuantizesEveryLinearWhenSkipModulesIsNullOrEmpty) {
  // null: transformers' defaults (lm_head, tied weights) come from the model, which the host's
  // architecture map knows; the plugin adds nothing of its own.
  for (const char* config : {R"({"load_in_4bit": true, "llm_int8_skip_modules": null})",
                             R"({"load_in_4bit": true, "llm_int8_skip_modules": []})"}) {
    Bnb4BitQuantizer q(config);
    std::string reason;
    EXPECT_TRUE(q.needs_quantization(Module("lm_head", QF_MODULE_LINEAR, 8, 4).get(), reason));
  }
}

TEST(BnbPostprocess, WritesExactlyTheKeysOfBitsAndBytesConfigToDict) {
  const std::set<std::string> expected = {"_load_in_4bit",
                                          "_load_in_8bit",
                                          "bnb_4bit_compute_dtype",
                                          "bnb_4bit_quant_storage",
                                          "bnb_4bit_quant_type",
                                          "bnb_4bit_use_double_quant",
                                          "llm_int8_enable_fp32_cpu_offload",
                                          "llm_int8_has_fp16_weight",
                                          "llm_int8_skip_modules",
                                          "llm_int8_threshold",
                                          "load_in_4bit",
                                          "load_in_8bit",
                                          "quant_method"};
  Bnb4BitQuantizer q4(test::config_4bit());
  Bnb8BitQuantizer q8(test::config_8bit());
  for (sdk::Quantizer* q : std::initializer_list<sdk::Quantizer*>{&q4, &q8}) {
    const json j = json::parse(q->postprocess("{}"));
    std::set<std::string> keys;
    for (const auto& item : j.items()) keys.insert(item.key());
    EXPECT_EQ(keys, expected);
  }
}

TEST(BnbPostprocess, WritesValuesAsTransformersDoes) {
  Bnb4BitQuantizer q(R"({"quant_method": "bitsandbytes_4bit", "bnb_4bit_quant_type": "nf4",
      "bnb_4bit_compute_dtype": "torch.bfloat16", "bnb_4bit_use_double_quant": true})");
  const json j = json::parse(q.postprocess(R"({"model_type": "llama"})"));
  EXPECT_EQ(j["quant_method"], "bitsandbytes");
  EXPECT_EQ(j["load_in_4bit"], true);
  EXPECT_EQ(j["_load_in_4bit"], true);
  EXPECT_EQ(j["load_in_8bit"], false);
  EXPECT_EQ(j["_load_in_8bit"], false);
  EXPECT_EQ(j["bnb_4bit_compute_dtype"], "bfloat16");
  EXPECT_EQ(j["bnb_4bit_quant_storage"], "uint8");
  EXPECT_EQ(j["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(j["bnb_4bit_use_double_quant"], true);
  EXPECT_TRUE(j["llm_int8_skip_modules"].is_null());
  EXPECT_TRUE(j["llm_int8_threshold"].is_number_float());
  EXPECT_DOUBLE_EQ(j["llm_int8_threshold"].get<double>(), 6.0);
}

TEST(BnbPostprocess, OutputConfiguresTheSameMethodAgain) {
  Bnb8BitQuantizer q(R"({"load_in_8bit": true, "llm_int8_skip_modules": ["lm_head"]})");
  Bnb8BitQuantizer again(q.postprocess("{}"));
  EXPECT_EQ(again.postprocess("{}"), q.postprocess("{}"));
  expect_error([&] { Bnb4BitQuantizer wrong(q.postprocess("{}")); }, QF_CODE_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace qforge::plugins::bnb
