// VerifyReport's forms (JSON, markdown, SVG) and the threshold table.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "qforge/verify.hpp"
#include "verify/verify_internal.hpp"

namespace qforge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

VerifyReport sample_report() {
  VerifyReport r;
  r.quant_method = "bitsandbytes_4bit";
  r.plugin_id = "bnb";
  VerifyCheck a = verify::make_check("footprint");
  verify::judge(a, 0.3, default_thresholds(r.quant_method));
  VerifyCheck b = verify::make_check("reconstruction");
  verify::judge(b, 1.0, default_thresholds(r.quant_method));
  b.detail = "worst module: model.layers.0.mlp.up_proj";
  VerifyCheck c = verify::make_check("top1");
  verify::skip(c, "runtime unavailable");
  r.checks = {a, b, c};
  r.modules = {{"model.layers.0.mlp.up_proj", 100, 30, 1.0},
               {"model.layers.0.mlp.down_proj", 100, 30, 0.1},
               {"model.norm", 8, 8, std::nullopt}};
  return r;
}

TEST(VerifyReport, JudgesFiguresByTheCheckComparison) {
  const auto t = default_thresholds("bitsandbytes_4bit");
  VerifyCheck top1 = verify::make_check("top1");
  verify::judge(top1, 0.9, t);
  EXPECT_EQ(top1.outcome, CheckOutcome::kPass);
  verify::judge(top1, 0.1, t);
  EXPECT_EQ(top1.outcome, CheckOutcome::kFail);
  VerifyCheck kl = verify::make_check("kl");
  verify::judge(kl, 0.01, t);
  EXPECT_EQ(kl.outcome, CheckOutcome::kPass);
  verify::judge(kl, NAN, t);
  EXPECT_EQ(kl.outcome, CheckOutcome::kFail);  // NaN never passes
  VerifyCheck footprint = verify::make_check("footprint");
  verify::judge(footprint, 1.0, t);
  EXPECT_EQ(footprint.outcome, CheckOutcome::kFail);  // not smaller
}

TEST(VerifyReport, PassedMeansNoFailureAndSkippedIsNotPassed) {
  VerifyReport r = sample_report();
  EXPECT_FALSE(r.passed());
  const nlohmann::json j = r.to_json();
  EXPECT_FALSE(j["passed"].get<bool>());
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["skipped"], 1);
  EXPECT_EQ(j["checks"][1]["id"], "reconstruction");
  EXPECT_EQ(j["checks"][1]["outcome"], "fail");
  EXPECT_EQ(j["checks"][1]["comparison"], "<=");
  EXPECT_DOUBLE_EQ(j["checks"][1]["threshold"].get<double>(), 0.2);
  EXPECT_TRUE(j["checks"][2]["figure"].is_null());
  EXPECT_EQ(j["checks"][2]["outcome"], "skipped");
  EXPECT_TRUE(j["modules"][2]["relative_error"].is_null());
  r.checks.erase(r.checks.begin() + 1);
  EXPECT_TRUE(r.passed());
}

TEST(VerifyReport, MarkdownHasEveryCheckAndReferencesThePlot) {
  const std::string md = sample_report().to_markdown("report.svg");
  EXPECT_THAT(md, HasSubstr("**FAIL**"));
  EXPECT_THAT(md, HasSubstr("`footprint`"));
  EXPECT_THAT(md, HasSubstr("`reconstruction`"));
  EXPECT_THAT(md, HasSubstr("runtime unavailable"));
  EXPECT_THAT(md, HasSubstr("](report.svg)"));
  // Modules by error, worst first.
  EXPECT_LT(md.find("`model.layers.0.mlp.up_proj`"), md.find("`model.layers.0.mlp.down_proj`"));
}

TEST(VerifyReport, SvgHasOneBarPerMeasuredModuleAndTheThreshold) {
  const std::string svg = sample_report().plot_svg();
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_THAT(svg, HasSubstr("</svg>"));
  size_t bars = 0;
  for (size_t at = svg.find("<rect x="); at != std::string::npos;
       at = svg.find("<rect x=", at + 1)) {
    ++bars;
  }
  EXPECT_EQ(bars, 2u);
  EXPECT_THAT(svg, HasSubstr("model.layers.0.mlp.up_proj: 1.0000"));
  EXPECT_THAT(svg, HasSubstr("threshold 0.2000"));
  EXPECT_THAT(svg, HasSubstr("#d62728\"><title>model.layers.0.mlp.up_proj"));  // over: red
  VerifyReport empty;
  EXPECT_THAT(empty.plot_svg(), HasSubstr("no quantized module was measured"));
  EXPECT_THAT(empty.plot_svg(), Not(HasSubstr("<rect x=")));
}

TEST(VerifyThresholds, DefaultsPerMethodAndUserOverrides) {
  const auto four = default_thresholds("bitsandbytes_4bit");
  const auto eight = default_thresholds("bitsandbytes_8bit");
  EXPECT_GT(four.at("kl"), eight.at("kl"));
  for (const auto& id : threshold_check_ids()) {
    EXPECT_TRUE(four.count(id)) << id;
    EXPECT_TRUE(default_thresholds("anything").count(id)) << id;
  }
  HostOptions options;
  options.use_env_path = false;
  options.use_default_dirs = false;
  Host host(options);
  auto t = verify::resolve_thresholds(host, "", "bitsandbytes_4bit", {{"top1", 0.5}});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.value().at("top1"), 0.5);
  EXPECT_EQ(t.value().at("kl"), four.at("kl"));
  auto unknown = verify::resolve_thresholds(host, "", "bitsandbytes_4bit", {{"layer_types", 1}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().exit_code(), ExitCode::kUsage);
  EXPECT_THAT(unknown.error().why(), HasSubstr("top1"));
}

}  // namespace
}  // namespace qforge
