#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "qforge/config.hpp"

namespace qforge {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class ConfigLoad : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) /
           ("qforge_config_load_" +
            std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  // The error load_user_config returns for `text`; checks it is bad input naming the file.
  Error load_error(const std::string& name, const std::string& text) {
    const std::string path = write(name, text);
    Result<json> r = load_user_config(path);
    EXPECT_FALSE(r.ok()) << "accepted " << text;
    if (r.ok()) return internal_error("no error", "");
    EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput);
    EXPECT_NE(r.error().summary().find(path), std::string::npos) << r.error().summary();
    return r.error();
  }

  fs::path dir_;
};

TEST_F(ConfigLoad, ReadsYamlWithTypedScalars) {
  Result<json> r = load_user_config(
      write("bnb.yaml",
            "quant_method: bitsandbytes\nload_in_4bit: true\nllm_int8_threshold: 6.0\n"
            "bnb_4bit_quant_type: nf4\nversion: \"2\"\nllm_int8_skip_modules: null\n"
            "modules: [lm_head]\n"));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r.value(), json::parse(R"({"quant_method":"bitsandbytes","load_in_4bit":true,
      "llm_int8_threshold":6.0,"bnb_4bit_quant_type":"nf4","version":"2",
      "llm_int8_skip_modules":null,"modules":["lm_head"]})"));
  EXPECT_TRUE(r.value().at("llm_int8_threshold").is_number_float());
}

TEST_F(ConfigLoad, ChoosesJsonOrYamlByContentNotExtension) {
  Result<json> json_in_yaml = load_user_config(write("a.yaml", R"(  {"bits": 4, "sym": true})"));
  ASSERT_TRUE(json_in_yaml.ok()) << json_in_yaml.error().to_string();
  EXPECT_EQ(json_in_yaml.value(), json::parse(R"({"bits": 4, "sym": true})"));
  Result<json> yaml_in_json = load_user_config(write("b.json", "bits: 4\nsym: true\n"));
  ASSERT_TRUE(yaml_in_json.ok()) << yaml_in_json.error().to_string();
  EXPECT_EQ(yaml_in_json.value(), json::parse(R"({"bits": 4, "sym": true})"));
}

TEST_F(ConfigLoad, UnwrapsTopLevelQuantizationConfig) {
  Result<json> yaml =
      load_user_config(write("w.yaml", "quantization_config:\n  quant_method: gptq\n  bits: 4\n"));
  ASSERT_TRUE(yaml.ok()) << yaml.error().to_string();
  EXPECT_EQ(yaml.value(), json::parse(R"({"quant_method":"gptq","bits":4})"));
  Result<json> whole_config_json = load_user_config(
      write("config.json",
            R"({"model_type":"llama","quantization_config":{"quant_method":"awq","bits":4}})"));
  ASSERT_TRUE(whole_config_json.ok()) << whole_config_json.error().to_string();
  EXPECT_EQ(whole_config_json.value(), json::parse(R"({"quant_method":"awq","bits":4})"));
}

TEST_F(ConfigLoad, YamlErrorsNameFileLineAndKey) {
  const Error dup = load_error("dup.yaml", "quant_method: gptq\nbits: 4\nbits: 8\n");
  EXPECT_NE(dup.summary().find("dup.yaml:3: key 'bits': duplicate key 'bits'"), std::string::npos)
      << dup.summary();
  EXPECT_NE(dup.why().find("first at line 2"), std::string::npos) << dup.why();

  const Error syntax = load_error("syntax.yaml", "quant_method: gptq\nbits: [4\n");
  EXPECT_NE(syntax.summary().find("syntax.yaml:"), std::string::npos);
  EXPECT_NE(syntax.summary().find("malformed YAML"), std::string::npos) << syntax.summary();

  const Error alias = load_error("alias.yaml", "a: &x [1, 2]\nb: *x\n");
  EXPECT_NE(alias.summary().find("alias.yaml:1: key 'a': YAML anchor"), std::string::npos)
      << alias.summary();

  const Error wrapped = load_error("wrapped.yaml", "x: 1\nquantization_config: [1]\n");
  EXPECT_NE(wrapped.summary().find("wrapped.yaml:2: key 'quantization_config'"), std::string::npos)
      << wrapped.summary();
}

TEST_F(ConfigLoad, JsonErrorsNameFileLineAndKey) {
  const Error dup = load_error("dup.json", "{\n  \"bits\": 4,\n  \"bits\": 8\n}");
  EXPECT_NE(dup.summary().find("dup.json:3:"), std::string::npos) << dup.summary();
  EXPECT_NE(dup.summary().find("key 'bits': duplicate key 'bits'"), std::string::npos);
  const Error syntax = load_error("syntax.json", "{\n  \"bits\": 4,\n}");
  EXPECT_NE(syntax.summary().find("syntax.json:3:"), std::string::npos) << syntax.summary();
}

TEST_F(ConfigLoad, RejectsNonMappingsEmptyFilesAndDeepNesting) {
  EXPECT_NE(load_error("list.yaml", "- a\n- b\n").summary().find("not a mapping"),
            std::string::npos);
  EXPECT_NE(load_error("list.json", "[1, 2]").summary().find("not a mapping"), std::string::npos);
  EXPECT_NE(load_error("empty.yaml", "# nothing\n").summary().find("is empty"), std::string::npos);
  std::string deep = "a:\n";
  std::string indent = "  ";
  for (int i = 0; i < 40; ++i) {
    deep += indent + "k:\n";
    indent += "  ";
  }
  deep += indent + "v: 1\n";
  EXPECT_NE(load_error("deep.yaml", deep).summary().find("nesting deeper than"), std::string::npos);
}

TEST_F(ConfigLoad, RejectsMissingAndOversizedFiles) {
  Result<json> missing = load_user_config((dir_ / "nope.yaml").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().exit_code(), ExitCode::kBadInput);
  EXPECT_NE(missing.error().summary().find("nope.yaml"), std::string::npos);

  Result<json> directory = load_user_config(dir_.string());
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().why(), "it is not a regular file");

  const Error big = load_error("big.yaml", "a: \"" + std::string((10u << 20) + 1, 'x') + "\"\n");
  EXPECT_NE(big.summary().find("too large"), std::string::npos);
}

TEST(ConfigSetFlag, SplitsAtTheFirstEqualsSign) {
  Result<std::pair<std::string, std::string>> r = parse_set_flag("a.b=c=d");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().first, "a.b");
  EXPECT_EQ(r.value().second, "c=d");
  Result<std::pair<std::string, std::string>> empty_value = parse_set_flag("backend=");
  ASSERT_TRUE(empty_value.ok());
  EXPECT_EQ(empty_value.value().second, "");
  // The value is kept raw; resolve_config types it.
  EXPECT_EQ(parse_set_flag("bits= 4").value().second, " 4");
}

TEST(ConfigSetFlag, BadFlagsAreUsageErrors) {
  for (const char* flag : {"bits", "=4", "", "a..b=1", ".a=1", "a.=1"}) {
    SCOPED_TRACE(flag);
    Result<std::pair<std::string, std::string>> r = parse_set_flag(flag);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().exit_code(), ExitCode::kUsage);
    EXPECT_NE(r.error().summary().find(std::string("--set '") + flag + "'"), std::string::npos)
        << r.error().summary();
    EXPECT_FALSE(r.error().fix().empty());
  }
}

}  // namespace
}  // namespace qforge
