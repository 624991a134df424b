#include <gtest/gtest.h>

#include "model/model_internal.hpp"

namespace qforge::model {
namespace {

using nlohmann::json;
using Defaults = std::vector<std::pair<std::string, std::string>>;

int64_t eval(const std::string& e, const json& config = json::object(), const Defaults& d = {}) {
  auto r = evaluate_expression(e, config, d);
  EXPECT_TRUE(r.ok()) << e << ": " << (r.ok() ? "" : r.error().to_string());
  return r.ok() ? r.value() : -999;
}

std::string eval_error(const std::string& e, const json& config = json::object(),
                       const Defaults& d = {}) {
  auto r = evaluate_expression(e, config, d);
  EXPECT_FALSE(r.ok()) << e << " evaluated to " << (r.ok() ? r.value() : 0);
  if (r.ok()) return "";
  EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput);
  return r.error().summary() + " | " + r.error().why();
}

TEST(ShapeExpression, FollowsArithmeticPrecedence) {
  EXPECT_EQ(eval("2 + 3 * 4"), 14);
  EXPECT_EQ(eval("(2 + 3) * 4"), 20);
  EXPECT_EQ(eval("20 - 6 - 4"), 10);  // left-associative
  EXPECT_EQ(eval("64 / 4 / 2"), 8);
  EXPECT_EQ(eval("2 * 3 + 4 * 5"), 26);
  EXPECT_EQ(eval("-3 + 10"), 7);
  EXPECT_EQ(eval("10 - -2"), 12);
  EXPECT_EQ(eval("  7  "), 7);
}

TEST(ShapeExpression, ReadsIntegerConfigKeys) {
  const json config = {{"num_attention_heads", 32}, {"head_dim", 128}, {"hidden_size", 4096}};
  EXPECT_EQ(eval("num_attention_heads * head_dim", config), 4096);
  EXPECT_EQ(eval("hidden_size / num_attention_heads", config), 128);
  EXPECT_EQ(eval("3 * hidden_size", config), 12288);
}

TEST(ShapeExpression, InexactDivisionIsAnErrorWithTheValues) {
  const std::string msg = eval_error("hidden_size / num_attention_heads",
                                     {{"hidden_size", 100}, {"num_attention_heads", 3}});
  EXPECT_NE(msg.find("100 / 3 is not exact"), std::string::npos) << msg;
  EXPECT_NE(eval_error("8 / 0").find("by zero"), std::string::npos);
}

TEST(ShapeExpression, MissingKeyIsNamed) {
  const std::string msg = eval_error("intermediate_size * 2", {{"hidden_size", 8}});
  EXPECT_NE(msg.find("'intermediate_size'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("intermediate_size * 2"), std::string::npos) << msg;
}

TEST(ShapeExpression, NonIntegerKeyIsAnError) {
  EXPECT_NE(eval_error("n", {{"n", 4.5}}).find("not an integer"), std::string::npos);
  EXPECT_NE(eval_error("n", {{"n", "64"}}).find("not an integer"), std::string::npos);
  EXPECT_NE(eval_error("n", {{"n", true}}).find("not an integer"), std::string::npos);
}

TEST(ShapeExpression, MissingOrNullKeyUsesTheDefault) {
  const Defaults d = {{"n_inner", "4 * n_embd"}, {"head_dim", "hidden_size / heads"}};
  EXPECT_EQ(eval("n_inner", {{"n_embd", 16}}, d), 64);
  EXPECT_EQ(eval("n_inner", {{"n_embd", 16}, {"n_inner", nullptr}}, d), 64);  // JSON null
  EXPECT_EQ(eval("n_inner", {{"n_embd", 16}, {"n_inner", 40}}, d), 40);       // given wins
  EXPECT_EQ(eval("heads * head_dim", {{"hidden_size", 64}, {"heads", 4}}, d), 64);
}

TEST(ShapeExpression, TraceNamesKeysAndDefaults) {
  const Defaults d = {{"head_dim", "hidden_size / heads"}};
  std::vector<std::string> trace;
  auto r = evaluate_expression("heads * head_dim", {{"hidden_size", 64}, {"heads", 4}}, d, &trace);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(trace, (std::vector<std::string>{"heads=4", "hidden_size=64",
                                             "head_dim=16 (default: hidden_size / heads)"}));
}

TEST(ShapeExpression, DefaultCyclesAreRejected) {
  const Defaults d = {{"a", "b + 1"}, {"b", "a * 2"}};
  EXPECT_NE(eval_error("a", json::object(), d).find("depends on itself"), std::string::npos);
}

TEST(ShapeExpression, OverflowIsAnError) {
  EXPECT_NE(eval_error("n * n", {{"n", int64_t{1} << 40}}).find("overflows"), std::string::npos);
  EXPECT_FALSE(check_expression("99999999999999999999").ok());
}

TEST(ShapeExpression, SyntaxErrorsSayWhere) {
  for (const char* bad :
       {"", "  ", "a +", "(a", "a)", "a ** 2", "2a", "a.b", "1.5", "a % 2", "()", "a b"}) {
    Status s = check_expression(bad);
    EXPECT_FALSE(s.ok()) << "'" << bad << "' was accepted";
    if (!s.ok()) {
      EXPECT_NE(s.error().summary().find(std::string("'") + bad + "'"), std::string::npos)
          << s.error().summary();
    }
  }
  Status s = check_expression("a + * b");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().why().find("character 5"), std::string::npos) << s.error().why();
  EXPECT_FALSE(check_expression(std::string(600, '1')).ok());
  EXPECT_FALSE(check_expression(std::string(40, '(') + "1" + std::string(40, ')')).ok());
}

TEST(ShapeExpression, SyntaxCheckListsIdentifiers) {
  auto ids = expression_identifiers("num_attention_heads * head_dim + head_dim / 2");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids.value(), (std::vector<std::string>{"num_attention_heads", "head_dim"}));
}

TEST(ShapeExpression, PublicEvaluateDimensionUsesMapDefaults) {
  ArchitectureMap map;
  map.defaults = {{"head_dim", "hidden_size / num_attention_heads"}};
  auto r = evaluate_dimension("num_attention_heads * head_dim",
                              {{"hidden_size", 96}, {"num_attention_heads", 3}}, map);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 96);
}

}  // namespace
}  // namespace qforge::model
