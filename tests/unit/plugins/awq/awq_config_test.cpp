// AwqConfig semantics (FORMATS.md §2.5): defaults, transformers' and AutoAWQ's checks, versions
// this plugin refuses, and the quantization_config AutoAWQ writes.
#include "awq_config.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>
#include <string>

namespace qforge::plugins::awq {
namespace {

struct Failure {
  int32_t code = 0;
  std::string what;
  std::string why;
  std::string fix;
};

Failure error_of(const std::string& json) {
  try {
    parse_awq_config(json);
  } catch (const sdk::Error& e) {
    return {e.code(), e.what(), e.why(), e.fix()};
  }
  return {};
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(AwqConfig, DefaultsAreAwqConfigs) {
  const AwqConfig c = parse_awq_config("{}");
  EXPECT_EQ(c.bits, 4);
  EXPECT_EQ(c.group_size, 128);
  EXPECT_TRUE(c.zero_point);
  EXPECT_EQ(c.version, AwqVersion::kGemm);
  EXPECT_EQ(c.backend, "autoawq");
  EXPECT_FALSE(c.modules_to_not_convert.has_value());
  EXPECT_FALSE(c.data_free);
}

TEST(AwqConfig, VersionIsCaseInsensitive) {
  EXPECT_EQ(parse_awq_config(R"({"version":"GEMV"})").version, AwqVersion::kGemv);
  EXPECT_EQ(parse_awq_config(R"({"version":"Gemm"})").version, AwqVersion::kGemm);
}

TEST(AwqConfig, ExllamaAndIpexAreRefusedAsNotSupportedHere) {
  for (const char* v : {"exllama", "IPEX"}) {
    const Failure f = error_of(std::string(R"({"version":")") + v + "\"}");
    EXPECT_EQ(f.code, QF_CODE_UNIMPLEMENTED) << v;
    EXPECT_TRUE(has(f.what, "is not supported here")) << f.what;
    EXPECT_TRUE(has(f.fix, "gemm")) << f.fix;
  }
}

TEST(AwqConfig, BadValuesGetTheirOwnMessages) {
  Failure f = error_of(R"({"version":"marlin"})");
  EXPECT_EQ(f.code, QF_CODE_INVALID_ARGUMENT);
  EXPECT_TRUE(has(f.what, "Unknown AWQLinearVersion marlin")) << f.what;
  f = error_of(R"({"bits":8})");
  EXPECT_TRUE(has(f.what, "only 4-bit AWQ is supported, got 8")) << f.what;
  EXPECT_TRUE(has(f.why, "Only 4-bit are supported for now.")) << f.why;
  f = error_of(R"({"w_bit":3})");
  EXPECT_TRUE(has(f.what, "w_bit")) << f.what;
  f = error_of(R"({"group_size":0})");
  EXPECT_TRUE(has(f.what, "group_size: must be a positive integer or -1")) << f.what;
  f = error_of(R"({"zero_point":"yes"})");
  EXPECT_TRUE(has(f.what, "zero_point: must be true or false")) << f.what;
  f = error_of(R"({"backend":"vllm"})");
  EXPECT_TRUE(has(f.what, "not recognized backend vllm")) << f.what;
  f = error_of(R"({"backend":"llm-awq"})");
  EXPECT_EQ(f.code, QF_CODE_UNIMPLEMENTED);
  EXPECT_TRUE(has(f.what, "llm-awq")) << f.what;
  f = error_of(R"({"do_fuse":true})");
  EXPECT_TRUE(has(f.what, "awq fuse feature is deprecated")) << f.what;
  f = error_of(R"({"modules_to_not_convert":"lm_head"})");
  EXPECT_TRUE(has(f.what, "modules_to_not_convert: must be a list of strings")) << f.what;
  f = error_of(R"({"quant_method":"gptq"})");
  EXPECT_TRUE(has(f.what, "quant_method is \"gptq\"")) << f.what;
  f = error_of("[1]");
  EXPECT_TRUE(has(f.what, "not a JSON object")) << f.what;
}

TEST(AwqConfig, ReadsAutoAwqsOwnKeyNamesAndIgnoresUnknownKeys) {
  const AwqConfig c = parse_awq_config(
      R"({"w_bit":4,"q_group_size":64,"zero_point":false,"version":"GEMV","no_such_key":1,)"
      R"("do_fuse":false,"modules_to_fuse":null,"exllama_config":{"version":2}})");
  EXPECT_EQ(c.group_size, 64);
  EXPECT_FALSE(c.zero_point);
  EXPECT_EQ(c.version, AwqVersion::kGemv);
}

TEST(AwqConfig, QuantizationConfigIsWhatAutoAwqWrites) {
  const AwqConfig c = parse_awq_config(
      R"({"group_size":-1,"version":"GEMV","modules_to_not_convert":["visual"],"data_free":true})");
  EXPECT_TRUE(c.data_free);
  const nlohmann::ordered_json o = to_quantization_config(c);
  EXPECT_EQ(o.dump(), R"({"quant_method":"awq","zero_point":true,"group_size":-1,"bits":4,)"
                      R"("version":"gemv","modules_to_not_convert":["visual"]})");
  EXPECT_EQ(to_quantization_config(parse_awq_config("{}")).dump(),
            R"({"quant_method":"awq","zero_point":true,"group_size":128,"bits":4,)"
            R"("version":"gemm","modules_to_not_convert":null})");
}

}  // namespace
}  // namespace qforge::plugins::awq
