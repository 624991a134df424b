#include "config/yaml_json.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "config/strict_json.hpp"

namespace qforge {
namespace {

using nlohmann::json;

json convert(const std::string& yaml) {
  Result<json> r = yaml_to_json(yaml, "test.yaml");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
  return r.ok() ? r.value() : json();
}

std::string convert_error(const std::string& yaml, const YamlJsonOptions& options = {}) {
  Result<json> r = yaml_to_json(yaml, "test.yaml", options);
  EXPECT_FALSE(r.ok()) << "accepted: " << yaml;
  if (r.ok()) return "";
  EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput);
  return r.error().summary();
}

TEST(ConfigYamlJson, PlainScalarsFollowTheCoreSchema) {
  const json j = convert(
      "t: true\nf: False\nn: null\ntilde: ~\nempty:\ni: 42\nneg: -7\nplus: +5\nhex: 0x1F\n"
      "oct: 0o17\nf1: 6.0\nf2: 1.5e3\nf3: .5\ns: nf4\nyes_word: yes\non_word: on\n"
      "underscored: 1_000\n");
  EXPECT_EQ(j.at("t"), true);
  EXPECT_EQ(j.at("f"), false);
  EXPECT_TRUE(j.at("n").is_null());
  EXPECT_TRUE(j.at("tilde").is_null());
  EXPECT_TRUE(j.at("empty").is_null());
  EXPECT_TRUE(j.at("i").is_number_integer());
  EXPECT_EQ(j.at("i"), 42);
  EXPECT_EQ(j.at("neg"), -7);
  EXPECT_EQ(j.at("plus"), 5);
  EXPECT_EQ(j.at("hex"), 31);
  EXPECT_EQ(j.at("oct"), 15);
  EXPECT_TRUE(j.at("f1").is_number_float());
  EXPECT_EQ(j.at("f1"), 6.0);
  EXPECT_EQ(j.at("f2"), 1500.0);
  EXPECT_EQ(j.at("f3"), 0.5);
  EXPECT_EQ(j.at("s"), "nf4");
  EXPECT_EQ(j.at("yes_word"), "yes");  // YAML 1.1 booleans stay strings
  EXPECT_EQ(j.at("on_word"), "on");
  EXPECT_EQ(j.at("underscored"), "1_000");
}

TEST(ConfigYamlJson, QuotedAndBlockScalarsStayStrings) {
  const json j = convert("a: \"3\"\nb: 'true'\nc: \"null\"\nd: |\n  6.0\n");
  EXPECT_EQ(j.at("a"), "3");
  EXPECT_EQ(j.at("b"), "true");
  EXPECT_EQ(j.at("c"), "null");
  EXPECT_EQ(j.at("d"), "6.0\n");
}

TEST(ConfigYamlJson, SequencesAndMappingsNest) {
  const json j = convert("skip: [lm_head, 2]\nnested:\n  a: {b: [1, {c: x}]}\n");
  EXPECT_EQ(j, json::parse(R"({"skip":["lm_head",2],"nested":{"a":{"b":[1,{"c":"x"}]}}})"));
}

TEST(ConfigYamlJson, IntegerLimitsAreExactOrRejected) {
  EXPECT_EQ(yaml_plain_scalar_to_json("18446744073709551615").value(),
            json(std::numeric_limits<uint64_t>::max()));
  EXPECT_EQ(yaml_plain_scalar_to_json("-9223372036854775808").value(),
            json(std::numeric_limits<int64_t>::min()));
  EXPECT_FALSE(yaml_plain_scalar_to_json("18446744073709551616").ok());
  EXPECT_FALSE(yaml_plain_scalar_to_json("-9223372036854775809").ok());
  EXPECT_FALSE(yaml_plain_scalar_to_json(".inf").ok());
  EXPECT_FALSE(yaml_plain_scalar_to_json("-.inf").ok());
  EXPECT_FALSE(yaml_plain_scalar_to_json(".nan").ok());
  EXPECT_FALSE(yaml_plain_scalar_to_json("1e999").ok());
}

TEST(ConfigYamlJson, RecordsTheLineOfEveryKeyAndItem) {
  YamlLineMap lines;
  Result<json> r = yaml_to_json("a:\n  b: 1\nlist:\n  - x\n  - {y: 2}\n", "t.yaml", {}, &lines);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(lines["a"], 1);
  EXPECT_EQ(lines["a.b"], 2);
  EXPECT_EQ(lines["list"], 3);
  EXPECT_EQ(lines["list[0]"], 4);
  EXPECT_EQ(lines["list[1]"], 5);
  EXPECT_EQ(lines["list[1].y"], 5);
}

TEST(ConfigYamlJson, RejectsDuplicateKeysWithBothLines) {
  const std::string what = convert_error("a: 1\nb:\n  c: 1\n  c: 2\n");
  EXPECT_EQ(what, "test.yaml:4: key 'b.c': duplicate key 'c'");
}

TEST(ConfigYamlJson, RejectsAnchorsAliasesAndTags) {
  EXPECT_NE(convert_error("a: &x 1\nb: 2\n").find("test.yaml:1:"), std::string::npos);
  EXPECT_NE(convert_error("a: &x 1\nb: *x\n").find("anchor"), std::string::npos);
  const std::string tag = convert_error("a: 1\nb: !!python/object:os.system ls\n");
  EXPECT_NE(tag.find("test.yaml:2: key 'b': explicit YAML tag"), std::string::npos) << tag;
  EXPECT_NE(convert_error("a: !!str 3\n").find("tag"), std::string::npos);
}

TEST(ConfigYamlJson, RejectsNonScalarKeysAndExtraDocuments) {
  EXPECT_NE(convert_error("? [a, b]\n: 1\n").find("complex"), std::string::npos);
  EXPECT_NE(convert_error("a: 1\n---\nb: 2\n").find("more than one YAML document"),
            std::string::npos);
}

TEST(ConfigYamlJson, RejectsNestingBeyondTheLimit) {
  EXPECT_TRUE(yaml_to_json("a: {b: {c: 1}}", "t.yaml", YamlJsonOptions{3}).ok());
  const std::string what = convert_error("a: {b: {c: {d: 1}}}", YamlJsonOptions{3});
  EXPECT_NE(what.find("key 'a.b.c': nesting deeper than 3 levels"), std::string::npos) << what;
}

TEST(ConfigYamlJson, SyntaxErrorsNameLineAndColumn) {
  const std::string what = convert_error("a: 1\nb: [1, 2\nc: 3\n");
  EXPECT_EQ(what.rfind("test.yaml:", 0), 0u) << what;
  EXPECT_NE(what.find("malformed YAML"), std::string::npos) << what;
}

TEST(ConfigYamlJson, EmptyDocumentIsNull) {
  EXPECT_TRUE(yaml_to_json("", "t.yaml").value().is_null());
  EXPECT_TRUE(yaml_to_json("# only a comment\n", "t.yaml").value().is_null());
}

TEST(ConfigStrictJson, ParsesWithJsonSemantics) {
  Result<json> r = parse_strict_json(R"({"a": 1, "b": "1", "c": [true, null, 1.5]})", "c.json");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r.value(), json::parse(R"({"a": 1, "b": "1", "c": [true, null, 1.5]})"));
}

TEST(ConfigStrictJson, RejectsDuplicateKeysNamingLineAndPath) {
  Result<json> r = parse_strict_json("{\n  \"a\": [0, {\"x\": 1,\n  \"x\": 2}]\n}", "c.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput);
  EXPECT_NE(r.error().summary().find("c.json:3:"), std::string::npos) << r.error().summary();
  EXPECT_NE(r.error().summary().find("key 'a[1].x': duplicate key 'x'"), std::string::npos)
      << r.error().summary();
}

TEST(ConfigStrictJson, SyntaxErrorsNameTheLine) {
  Result<json> r = parse_strict_json("{\n\"a\": 1,\n \"b\": x}", "c.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().summary(), "c.json:3:7: malformed JSON") << r.error().to_string();
  EXPECT_NE(r.error().why().find("syntax error"), std::string::npos);
}

TEST(ConfigStrictJson, RejectsNestingBeyondTheLimit) {
  EXPECT_TRUE(parse_strict_json(R"({"a":[{"b":1}]})", "c.json", 3).ok());
  Result<json> r = parse_strict_json(R"({"a":[{"b":[1]}]})", "c.json", 3);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().summary().find("key 'a[0].b': nesting deeper than 3"), std::string::npos)
      << r.error().summary();
}

}  // namespace
}  // namespace qforge
