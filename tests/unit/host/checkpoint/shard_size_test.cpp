// parse_shard_size (transformers' convert_file_size_to_int) and dump_config_json.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "qforge/checkpoint.hpp"

namespace qforge {
namespace {

using ::testing::HasSubstr;

TEST(ParseShardSize, ReadsTransformersUnits) {
  EXPECT_EQ(parse_shard_size("5GB").value(), 5'000'000'000u);
  EXPECT_EQ(parse_shard_size("500MB").value(), 500'000'000u);
  EXPECT_EQ(parse_shard_size("10KB").value(), 10'000u);
  EXPECT_EQ(parse_shard_size("2TB").value(), 2'000'000'000'000u);
  EXPECT_EQ(parse_shard_size("10GiB").value(), 10ull << 30);
  EXPECT_EQ(parse_shard_size("3MiB").value(), 3ull << 20);
  EXPECT_EQ(parse_shard_size("1KiB").value(), 1024u);
  EXPECT_EQ(parse_shard_size("1TiB").value(), 1ull << 40);
  EXPECT_EQ(parse_shard_size("1024").value(), 1024u);
  EXPECT_EQ(parse_shard_size(" 5gB ").value(), 5'000'000'000u);
  EXPECT_EQ(parse_shard_size("1mib").value(), 1ull << 20);
}

TEST(ParseShardSize, ReadsALowerCaseBAsBitsLikeTransformers) {
  EXPECT_EQ(parse_shard_size("5Gb").value(), 625'000'000u);
  EXPECT_EQ(parse_shard_size("8mb").value(), 1'000'000u);
}

TEST(ParseShardSize, RefusesJunk) {
  for (const char* text : {"", "GB", "five", "1.5GB", "-1GB", "-5", "5 PB", "0", "0GB", "5GBx"}) {
    auto size = parse_shard_size(text);
    ASSERT_FALSE(size.ok()) << text;
    EXPECT_THAT(size.error().summary(), HasSubstr(std::string("'") + text + "'"));
    EXPECT_EQ(size.error().exit_code(), ExitCode::kUsage);
  }
  EXPECT_THAT(parse_shard_size("-1GB").error().why(), HasSubstr("negative"));
  EXPECT_THAT(parse_shard_size("99999999999999999999").error().why(), HasSubstr("64 bits"));
  EXPECT_THAT(parse_shard_size("99999999999GiB").error().why(), HasSubstr("64 bits"));
}

TEST(DumpConfigJson, MatchesPythonJsonDumpsIndent2SortKeys) {
  const nlohmann::json config = {
      {"vocab_size", 32000},
      {"architectures", {"LlamaForCausalLM"}},
      {"rms_norm_eps", 1e-05},
      {"name", "caf\xC3\xA9"},
      {"empty", nlohmann::json::object()},
      {"quantization_config", {{"load_in_4bit", true}, {"bnb_4bit_quant_type", "nf4"}}}};
  EXPECT_EQ(dump_config_json(config),
            "{\n"
            "  \"architectures\": [\n"
            "    \"LlamaForCausalLM\"\n"
            "  ],\n"
            "  \"empty\": {},\n"
            "  \"name\": \"caf\\u00e9\",\n"
            "  \"quantization_config\": {\n"
            "    \"bnb_4bit_quant_type\": \"nf4\",\n"
            "    \"load_in_4bit\": true\n"
            "  },\n"
            "  \"rms_norm_eps\": 1e-05,\n"
            "  \"vocab_size\": 32000\n"
            "}\n");
}

}  // namespace
}  // namespace qforge
