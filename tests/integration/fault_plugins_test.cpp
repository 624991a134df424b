// Misbehaving plugins (tests/fixtures/CMakeLists.txt) through the CLI: each one yields its own
// error in `qforge doctor`, the healthy in-tree plugins still load, stdout stays one JSON
// document even when a plugin prints, and `plugins check` catches the faults a vendor would ship.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "cli_runner.hpp"

#if defined(QFORGE_HAVE_FAULT_PLUGINS)

namespace qforge::test {
namespace {

using ::testing::HasSubstr;

const std::string kFixtureDir = QFORGE_FIXTURE_PLUGIN_DIR;

// Folders whose plugin the host must refuse at load time (manifest, library or negotiation).
const char* const kLoadFailures[] = {
    "qf_fault_no_entry",
    "qf_fault_wrong_major",
    "qf_fault_needs_newer_host",
    "qf_fault_method_mismatch",
    "qf_fault_null_table",
    "qf_fault_undefined_symbol",
    "not_elf",
    "missing_library",
    "sha256_mismatch",
};

// Folders whose plugin loads: its faults show only when a hook runs.
const char* const kLoadable[] = {"qf_fault_ok", "qf_fault_throws", "qf_fault_garbage",
                                 "qf_fault_stdout", "sha256_ok"};

struct DoctorRun {  // NOLINT(bugprone-exception-escape): nlohmann::json copies may throw
  ProcessResult process;
  nlohmann::json doc;
  const nlohmann::json* fault = nullptr;  // the record whose manifest is in the fault folder
};

// Runs `qforge --plugin-dir <folder> doctor --json`; fills `fault` with the folder's plugin.
DoctorRun run_doctor_on(const std::string& folder) {
  DoctorRun run;
  const std::string dir = kFixtureDir + "/" + folder;
  run.process = run_qforge({"--plugin-dir", dir, "doctor", "--json"});
  std::string why;
  auto doc = parse_stdout_json(run.process, &why);
  EXPECT_TRUE(doc.has_value()) << folder << ": " << why;
  if (!doc) return run;
  run.doc = std::move(*doc);
  for (const auto& p : run.doc["plugins"]) {
    const std::filesystem::path manifest = p.value("manifest", "");
    if (manifest.parent_path() == std::filesystem::path(dir)) run.fault = &p;
  }
  return run;
}

void expect_bnb_healthy(const DoctorRun& run, const std::string& folder) {
  const nlohmann::json* bnb = find_plugin(run.doc["plugins"], "bnb");
  ASSERT_NE(bnb, nullptr) << folder << ": " << run.doc.dump(2);
  EXPECT_EQ((*bnb)["state"], "loaded") << folder << ": " << bnb->dump(2);
}

class FaultPluginLoadFailure : public ::testing::TestWithParam<const char*> {};

TEST_P(FaultPluginLoadFailure, DoctorListsItFailedWithReasonAndBnbHealthy) {
  const DoctorRun run = run_doctor_on(GetParam());
  EXPECT_EQ(run.process.exit_code, 0) << run.process.describe();
  ASSERT_NE(run.fault, nullptr) << GetParam() << " not listed: " << run.doc.dump(2);
  EXPECT_EQ((*run.fault)["state"], "failed") << run.fault->dump(2);
  ASSERT_TRUE((*run.fault)["reason"].is_string()) << run.fault->dump(2);
  EXPECT_FALSE((*run.fault)["reason"].get<std::string>().empty());
  expect_bnb_healthy(run, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FaultPluginLoadFailure, ::testing::ValuesIn(kLoadFailures));

class FaultPluginLoadable : public ::testing::TestWithParam<const char*> {};

TEST_P(FaultPluginLoadable, DoctorLoadsItBesideBnb) {
  const DoctorRun run = run_doctor_on(GetParam());
  EXPECT_EQ(run.process.exit_code, 0) << run.process.describe();
  ASSERT_NE(run.fault, nullptr) << GetParam() << " not listed: " << run.doc.dump(2);
  EXPECT_EQ((*run.fault)["state"], "loaded") << run.fault->dump(2);
  expect_bnb_healthy(run, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FaultPluginLoadable, ::testing::ValuesIn(kLoadable));

TEST(FaultPlugins, EachLoadFailureHasItsOwnReason) {
  std::map<std::string, std::string> folder_by_reason;
  for (const char* folder : kLoadFailures) {
    const DoctorRun run = run_doctor_on(folder);
    ASSERT_NE(run.fault, nullptr) << folder;
    const std::string reason = (*run.fault).value("reason", "");
    const auto [it, inserted] = folder_by_reason.emplace(reason, folder);
    EXPECT_TRUE(inserted) << folder << " and " << it->second << " give the same reason: " << reason;
  }
}

TEST(FaultPlugins, EveryFixtureFolderKeepsStdoutOneJsonDocument) {
  size_t folders = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kFixtureDir)) {
    if (!entry.is_directory()) continue;
    ++folders;
    const DoctorRun run = run_doctor_on(entry.path().filename().string());
    EXPECT_EQ(run.process.exit_code, 0) << entry.path() << ": " << run.process.describe();
    expect_bnb_healthy(run, entry.path().filename().string());
  }
  EXPECT_GE(folders, std::size(kLoadFailures) + std::size(kLoadable));
}

TEST(FaultPlugins, PluginPrintfLandsOnStderrNotStdout) {
  // fault_stdout prints from init, which runs before doctor's first create.
  const DoctorRun run = run_doctor_on("qf_fault_stdout");
  EXPECT_THAT(run.process.err, HasSubstr("fault_stdout: printf from init"));
  EXPECT_THAT(run.process.err, HasSubstr("fault_stdout: std::cout from init"));
  EXPECT_EQ(run.process.out.find("from init"), std::string::npos) << run.process.out;
}

TEST(FaultPlugins, ShadowedIdIsReportedNamingTheWinner) {
  const ProcessResult r = run_qforge({"--plugin-dir", kFixtureDir + "/shadow_a", "--plugin-dir",
                                      kFixtureDir + "/shadow_b", "plugins", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::string why;
  const auto list = parse_stdout_json(r, &why);
  ASSERT_TRUE(list.has_value()) << why;
  std::map<std::string, nlohmann::json> by_state;
  for (const auto& p : *list) {
    if (p["id"] == "fault_shadow") by_state[p["state"].get<std::string>()] = p;
  }
  ASSERT_EQ(by_state.count("shadowed"), 1u) << list->dump(2);
  ASSERT_EQ(by_state.count("discovered"), 1u) << list->dump(2);
  EXPECT_EQ(by_state["discovered"]["version"], "1.0.0-a");
  EXPECT_THAT(by_state["shadowed"]["shadowed_by"].get<std::string>(), HasSubstr("shadow_a"));
}

nlohmann::json check_json(const std::string& manifest, int expected_exit) {
  const ProcessResult r = run_qforge({"plugins", "check", manifest, "--json"});
  EXPECT_EQ(r.exit_code, expected_exit) << r.describe();
  std::string why;
  auto report = parse_stdout_json(r, &why);
  EXPECT_TRUE(report.has_value()) << why;
  return report.value_or(nlohmann::json());
}

std::string failed_checks(const nlohmann::json& report) {
  std::string s;
  for (const auto& c : report["checks"]) {
    if (c["result"] == "fail")
      s += c["name"].get<std::string>() + ": " + c.value("detail", "") + "\n";
  }
  return s;
}

TEST(FaultPluginsCheck, HealthyControlPasses) {
  const nlohmann::json report = check_json(kFixtureDir + "/qf_fault_ok/fault_ok.yaml", 0);
  EXPECT_EQ(report["passed"], true) << report.dump(2);
}

TEST(FaultPluginsCheck, StdoutWritesFailTheCheck) {
  const nlohmann::json report = check_json(kFixtureDir + "/qf_fault_stdout/fault_stdout.yaml", 5);
  EXPECT_EQ(report["passed"], false);
  EXPECT_THAT(failed_checks(report), HasSubstr("stdout")) << report.dump(2);
}

TEST(FaultPluginsCheck, ThrowingQuantizeFailsTheCheck) {
  const nlohmann::json report = check_json(kFixtureDir + "/qf_fault_throws/fault_throws.yaml", 5);
  EXPECT_THAT(failed_checks(report), HasSubstr("fault_rtn: quantize")) << report.dump(2);
}

TEST(FaultPluginsCheck, UnloadableLibraryFailsTheLoadCheck) {
  const nlohmann::json report =
      check_json(kFixtureDir + "/qf_fault_wrong_major/fault_wrong_major.yaml", 5);
  EXPECT_THAT(failed_checks(report), HasSubstr("load")) << report.dump(2);
}

}  // namespace
}  // namespace qforge::test

#endif  // QFORGE_HAVE_FAULT_PLUGINS
