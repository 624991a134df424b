// The optional `verify:` block of a method: thresholds for `qforge verify` by check id.
#include <gtest/gtest.h>

#include "qforge/manifest.hpp"
#include "support/manifest_builder.hpp"

namespace qforge {
namespace {

using test::ManifestBuilder;
using test::MethodBuilder;

Result<PluginManifest> parse_method_with(const std::string& line) {
  return parse_manifest_text(ManifestBuilder().method(MethodBuilder().raw_extra(line)).yaml(),
                             "acme.yaml", "/opt/plugins/acme");
}

std::string error_of(const Result<PluginManifest>& r) {
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput);
  return r.error().summary() + " | " + r.error().why();
}

TEST(ManifestVerify, ReadsThresholdsByCheckId) {
  auto r = parse_method_with("verify: {top1: 0.9, kl: 0.05, reconstruction: 1}");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const auto& t = r->methods[0].verify_thresholds;
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.at("top1"), 0.9);
  EXPECT_EQ(t.at("kl"), 0.05);
  EXPECT_EQ(t.at("reconstruction"), 1.0);
}

TEST(ManifestVerify, AbsentBlockMeansHostDefaults) {
  auto r = parse_manifest_text(ManifestBuilder().yaml(), "acme.yaml", "/opt/plugins/acme");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->methods[0].verify_thresholds.empty());
}

TEST(ManifestVerify, RejectsUnknownIdsNonNumbersAndOutOfRangeShares) {
  const std::string unknown = error_of(parse_method_with("verify: {top_1: 0.9}"));
  EXPECT_NE(unknown.find("methods[0].verify.top_1"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("top1"), std::string::npos) << unknown;
  EXPECT_NE(error_of(parse_method_with("verify: {top1: high}")).find("a number"),
            std::string::npos);
  EXPECT_NE(error_of(parse_method_with("verify: {top1: \"0.9\"}")).find("a number"),
            std::string::npos);
  EXPECT_NE(error_of(parse_method_with("verify: {top1: 1.5}")).find("out of range"),
            std::string::npos);
  EXPECT_NE(error_of(parse_method_with("verify: {kl: -0.1}")).find("out of range"),
            std::string::npos);
  EXPECT_NE(error_of(parse_method_with("verify: [top1]")).find("mapping"), std::string::npos);
  // Checks without a figure take no threshold.
  EXPECT_NE(error_of(parse_method_with("verify: {layer_types: 1}")).find("unknown check"),
            std::string::npos);
}

}  // namespace
}  // namespace qforge
