// The out-of-tree vendor plugin (tests/fixtures/vendor-plugin): built against the exported
// qforge-plugin-api package only, staged into a folder with its manifest, and used by the
// already-built qforge binary through --plugin-dir or QFORGE_PLUGIN_PATH. No host rebuild
// happens: staging never touches the host's build tree beyond reading the package files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

using ::testing::Contains;

class VendorPlugin : public ::testing::Test {
 protected:
  // Under ctest the fixture test VendorPlugin.BuildAndStage has just staged the plugin (see
  // CMakeLists.txt); run by hand, the suite stages it once itself.
  static void SetUpTestSuite() {
    if (std::filesystem::exists(manifest())) return;
    staging_ = std::make_unique<ProcessResult>(
        run_process({"bash", QFORGE_SOURCE_DIR "/tests/fixtures/vendor-plugin/build_and_stage.sh",
                     QFORGE_BUILD_DIR, plugin_dir()}));
  }
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(manifest()))
        << "the vendor plugin is not staged in " << plugin_dir()
        << (staging_ ? "; build_and_stage.sh: " + staging_->describe() : std::string());
  }

  static std::string plugin_dir() { return QFORGE_VENDOR_STAGE_DIR; }
  static std::string manifest() { return plugin_dir() + "/acme_int4.yaml"; }

  static std::unique_ptr<ProcessResult> staging_;
};

std::unique_ptr<ProcessResult> VendorPlugin::staging_;

nlohmann::json stdout_json(const ProcessResult& r) {
  std::string why;
  auto j = parse_stdout_json(r, &why);
  EXPECT_TRUE(j.has_value()) << why;
  return j.value_or(nlohmann::json());
}

const nlohmann::json* find_check(const nlohmann::json& report, const std::string& name) {
  for (const auto& c : report["checks"]) {
    if (c["name"] == name) return &c;
  }
  return nullptr;
}

TEST_F(VendorPlugin, IsListedFromPluginDirBesideBnb) {
  const ProcessResult r = run_qforge({"--plugin-dir", plugin_dir(), "plugins", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const nlohmann::json list = stdout_json(r);
  const nlohmann::json* acme = find_plugin(list, "acme");
  ASSERT_NE(acme, nullptr) << list.dump(2);
  EXPECT_THAT(method_names(*acme), Contains("acme_int4_rtn"));
  EXPECT_NE(find_plugin(list, "bnb"), nullptr) << list.dump(2);
}

TEST_F(VendorPlugin, LoadsThroughTheHost) {
  const ProcessResult r = run_qforge({"--plugin-dir", plugin_dir(), "plugins", "--load", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const nlohmann::json list = stdout_json(r);
  const nlohmann::json* acme = find_plugin(list, "acme");
  ASSERT_NE(acme, nullptr) << list.dump(2);
  EXPECT_EQ((*acme)["state"], "loaded") << acme->dump(2);
}

TEST_F(VendorPlugin, PassesConformanceCheckWithQuantizeAndDequantizeRun) {
  const ProcessResult r =
      run_qforge({"--plugin-dir", plugin_dir(), "plugins", "check", manifest(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const nlohmann::json report = stdout_json(r);
  EXPECT_EQ(report["plugin"], "acme");
  EXPECT_EQ(report["passed"], true) << report.dump(2);
  for (const char* hook : {"quantize", "dequantize", "outputs match describe_quantized"}) {
    const nlohmann::json* check = find_check(report, std::string("acme_int4_rtn: ") + hook);
    ASSERT_NE(check, nullptr) << hook << " missing in " << report.dump(2);
    EXPECT_EQ((*check)["result"], "pass") << check->dump(2);
  }
}

TEST_F(VendorPlugin, TextConformanceReportSaysPassed) {
  const ProcessResult r = run_qforge({"plugins", "check", manifest()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, ::testing::HasSubstr("PASSED"));
}

TEST_F(VendorPlugin, DoctorChoosesAcmeForItsMethodOnCpu) {
  const ProcessResult r = run_qforge({"--plugin-dir", plugin_dir(), "doctor", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const nlohmann::json doc = stdout_json(r);
  bool found = false;
  for (const auto& row : doc["methods"]) {
    if (row["quant_method"] == "acme_int4_rtn" && row["device"] == "cpu") {
      found = true;
      EXPECT_EQ(row["chosen"], "acme") << row.dump(2);
    }
  }
  EXPECT_TRUE(found) << doc["methods"].dump(2);
}

TEST_F(VendorPlugin, IsFoundThroughQforgePluginPathUnlessDisabled) {
  ProcessOptions with_path;
  with_path.env["QFORGE_PLUGIN_PATH"] = plugin_dir();
  const nlohmann::json listed = stdout_json(run_qforge({"plugins", "--json"}, with_path));
  EXPECT_NE(find_plugin(listed, "acme"), nullptr) << listed.dump(2);

  const nlohmann::json ignored =
      stdout_json(run_qforge({"--no-env-path", "plugins", "--json"}, with_path));
  EXPECT_EQ(find_plugin(ignored, "acme"), nullptr) << ignored.dump(2);
}

}  // namespace
}  // namespace qforge::test
