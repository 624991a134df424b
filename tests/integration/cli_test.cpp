// `qforge` end to end: usage and exit codes, stdout discipline, `plugins`, `doctor` and
// `plugins check` against the in-tree plugins of this build tree.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

const std::string kBnbManifest = std::string(QFORGE_BUILD_PLUGIN_DIR) + "/bnb.yaml";

nlohmann::json run_json(const std::vector<std::string>& args, int expected_exit = 0) {
  const ProcessResult r = run_qforge(args);
  EXPECT_EQ(r.exit_code, expected_exit) << r.describe();
  std::string why;
  auto j = parse_stdout_json(r, &why);
  EXPECT_TRUE(j.has_value()) << why;
  return j.value_or(nlohmann::json());
}

TEST(CliUsage, UnknownSubcommandExitsWithUsageCode) {
  const ProcessResult r = run_qforge({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("frobnicate"));
}

TEST(CliUsage, UsageErrorWithJsonGivesOneErrorDocument) {
  const nlohmann::json doc = run_json({"--json", "frobnicate"}, 2);
  ASSERT_TRUE(doc.contains("error")) << doc.dump(2);
  EXPECT_EQ(doc["error"]["exit_code"], 2);
  EXPECT_THAT(doc["error"]["why"].get<std::string>(), HasSubstr("frobnicate"));
}

TEST(CliUsage, MissingSubcommandExitsWithUsageCode) {
  const ProcessResult r = run_qforge({});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST(CliUsage, UnknownFlagExitsWithUsageCode) {
  const ProcessResult r = run_qforge({"doctor", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST(CliUsage, InvalidLogLevelExitsWithUsageCode) {
  const ProcessResult r = run_qforge({"--log-level", "loud", "plugins"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST(CliUsage, HelpGoesToStdoutAndExitsZero) {
  const ProcessResult r = run_qforge({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("doctor"));
  EXPECT_THAT(r.out, HasSubstr("plugins"));
}

TEST(CliUsage, VersionNamesHostAndAbi) {
  const ProcessResult r = run_qforge({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("qforge 0.1.0"));
  EXPECT_THAT(r.out, HasSubstr("C ABI 1.0"));
}

TEST(CliPlugins, JsonListsBnbWithBothMethodsAndNothingElseOnStdout) {
  const nlohmann::json list = run_json({"plugins", "--json"});
  ASSERT_TRUE(list.is_array()) << list.dump();
  const nlohmann::json* bnb = find_plugin(list, "bnb");
  ASSERT_NE(bnb, nullptr) << list.dump(2);
  EXPECT_THAT(method_names(*bnb), Contains("bitsandbytes_4bit"));
  EXPECT_THAT(method_names(*bnb), Contains("bitsandbytes_8bit"));
  // Without --load the library is not opened: the manifest alone answers.
  EXPECT_EQ((*bnb)["state"], "discovered");
  for (const char* key : {"version", "vendor", "manifest", "library", "reason"}) {
    EXPECT_TRUE(bnb->contains(key)) << key;
  }
  for (const auto& m : (*bnb)["methods"]) {
    for (const char* key : {"aliases", "presets", "devices", "priority"}) {
      EXPECT_TRUE(m.contains(key)) << key << " in " << m.dump();
    }
  }
}

TEST(CliPlugins, GlobalFlagsMayFollowTheSubcommand) {
  const nlohmann::json before = run_json({"--json", "plugins"});
  const nlohmann::json after = run_json({"plugins", "--json"});
  EXPECT_EQ(before, after);
}

TEST(CliPlugins, LoadFlagLoadsBnb) {
  const nlohmann::json list = run_json({"plugins", "--load", "--json"});
  const nlohmann::json* bnb = find_plugin(list, "bnb");
  ASSERT_NE(bnb, nullptr) << list.dump(2);
  EXPECT_EQ((*bnb)["state"], "loaded") << bnb->dump(2);
  EXPECT_TRUE((*bnb)["reason"].is_null()) << bnb->dump(2);
}

TEST(CliPlugins, TextListingNamesBnbAndItsMethods) {
  const ProcessResult r = run_qforge({"plugins"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("bnb"));
  EXPECT_THAT(r.out, HasSubstr("bitsandbytes_4bit"));
  EXPECT_THAT(r.out, HasSubstr("bitsandbytes_8bit"));
}

TEST(CliPlugins, EmptySearchPathListsNothing) {
  TempDir empty;
  const nlohmann::json list =
      run_json({"--no-default-dirs", "--plugin-dir", empty.path().string(), "plugins", "--json"});
  EXPECT_EQ(list, nlohmann::json::array());
}

TEST(CliDoctor, JsonHasAChosenPluginOrReasonsForEveryMethod) {
  const nlohmann::json doc = run_json({"doctor", "--json"});
  for (const char* key : {"environment", "search_path", "plugins", "methods"}) {
    ASSERT_TRUE(doc.contains(key)) << key << " missing in " << doc.dump(2);
  }
  // Every method a healthy plugin declares has a row for the cpu.
  std::set<std::string> declared;
  for (const auto& p : doc["plugins"]) {
    if (p["state"] == "failed" || p["state"] == "shadowed") continue;
    for (const auto& m : method_names(p)) declared.insert(m);
  }
  EXPECT_THAT(declared, Contains("bitsandbytes_4bit"));
  EXPECT_THAT(declared, Contains("bitsandbytes_8bit"));
  std::set<std::string> rows;
  for (const auto& row : doc["methods"]) {
    if (row["device"] == "cpu") rows.insert(row["quant_method"].get<std::string>());
    ASSERT_TRUE(row["candidates"].is_array()) << row.dump(2);
    EXPECT_FALSE(row["candidates"].empty()) << row.dump(2);
    if (row["chosen"].is_null()) {
      // None can serve: every candidate says why.
      for (const auto& c : row["candidates"]) {
        EXPECT_TRUE(c["rejected_because"].is_string()) << row.dump(2);
        EXPECT_FALSE(c["rejected_because"].get<std::string>().empty()) << row.dump(2);
      }
    } else {
      bool chosen_is_candidate = false;
      for (const auto& c : row["candidates"]) {
        if (c["plugin"] == row["chosen"]) {
          chosen_is_candidate = true;
          EXPECT_TRUE(c["rejected_because"].is_null()) << row.dump(2);
        }
      }
      EXPECT_TRUE(chosen_is_candidate) << row.dump(2);
    }
  }
  EXPECT_EQ(rows, declared);
}

TEST(CliDoctor, LoadsBnbAndReportsItHealthy) {
  const nlohmann::json doc = run_json({"doctor", "--json"});
  const nlohmann::json* bnb = find_plugin(doc["plugins"], "bnb");
  ASSERT_NE(bnb, nullptr) << doc.dump(2);
  EXPECT_EQ((*bnb)["state"], "loaded") << bnb->dump(2);
}

TEST(CliDoctor, TextReportHasEnvironmentPluginsAndMethods) {
  const ProcessResult r = run_qforge({"doctor"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  for (const char* text : {"Environment", "Plugin search path", "Plugins", "Methods", "bnb",
                           "bitsandbytes_4bit on cpu"}) {
    EXPECT_THAT(r.out, HasSubstr(text));
  }
}

TEST(CliDoctor, VerboseLogsGoToStderrNotStdout) {
  const ProcessResult r = run_qforge({"-vv", "doctor", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  std::string why;
  EXPECT_TRUE(parse_stdout_json(r, &why).has_value()) << why;
  EXPECT_FALSE(r.err.empty()) << "trace logging should have said something on stderr";
}

// An environment in the shape `doctor --json` prints, with one simulated CUDA GPU added.
nlohmann::json simulated_gpu_environment() {
  nlohmann::json env = run_json({"doctor", "--json"})["environment"];
  env["cpu"]["model"] = "Simulated CPU for qforge tests";
  env["cuda"]["driver_found"] = true;
  env["cuda"]["driver_version"] = 12040;
  env["devices"] = nlohmann::json::array({{{"backend", "cuda"},
                                           {"index", 0},
                                           {"name", "Simulated GPU"},
                                           {"compute_capability", "9.0"},
                                           {"total_memory", 85899345920ull},
                                           {"free_memory", 85000000000ull}}});
  return env;
}

TEST(CliDoctor, SimulatedEnvironmentIsReportedAsGiven) {
  TempDir dir;
  const auto file = dir.write("env.json", simulated_gpu_environment().dump());
  const nlohmann::json doc = run_json({"--env", file.string(), "doctor", "--json"});
  EXPECT_EQ(doc["environment"]["cpu"]["model"], "Simulated CPU for qforge tests");
  ASSERT_EQ(doc["environment"]["devices"].size(), 1u) << doc["environment"].dump(2);
  EXPECT_EQ(doc["environment"]["devices"][0]["name"], "Simulated GPU");
}

TEST(CliDoctor, SimulatedGpuAddsCudaSelectionForEveryMethod) {
  TempDir dir;
  const auto file = dir.write("env.json", simulated_gpu_environment().dump());
  const nlohmann::json doc = run_json({"--env", file.string(), "doctor", "--json"});
  std::set<std::string> cpu_methods;
  std::set<std::string> cuda_methods;
  for (const auto& row : doc["methods"]) {
    const std::string method = row["quant_method"];
    (row["device"] == "cuda:0" ? cuda_methods : cpu_methods).insert(method);
    EXPECT_TRUE(row["chosen"].is_string() || row.contains("reason")) << row.dump(2);
  }
  EXPECT_THAT(cuda_methods, Contains("bitsandbytes_4bit"));
  EXPECT_EQ(cuda_methods, cpu_methods);
}

TEST(CliDoctor, WholeDoctorDocumentIsAcceptedAsEnvironment) {
  TempDir dir;
  nlohmann::json doctor_doc = {{"environment", simulated_gpu_environment()}};
  const auto file = dir.write("doctor.json", doctor_doc.dump());
  const nlohmann::json doc = run_json({"--env", file.string(), "doctor", "--json"});
  EXPECT_EQ(doc["environment"]["devices"][0]["name"], "Simulated GPU");
}

TEST(CliEnv, EnvironmentWithUnknownFieldIsBadInput) {
  TempDir dir;
  const auto file = dir.write("env.json", R"({"cpu": {"arch": "x86_64"}, "gpus": []})");
  const ProcessResult r = run_qforge({"--env", file.string(), "doctor"});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("gpus"));
}

TEST(CliEnv, MalformedEnvironmentFileIsBadInput) {
  TempDir dir;
  const auto file = dir.write("env.json", "{\"cpu_arch\": ");
  const ProcessResult r = run_qforge({"--env", file.string(), "doctor"});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_THAT(r.err, HasSubstr(file.string()));
}

TEST(CliEnv, MalformedEnvironmentFileGivesJsonErrorDocument) {
  TempDir dir;
  const auto file = dir.write("env.json", "[1, 2");
  const nlohmann::json doc = run_json({"--json", "--env", file.string(), "doctor"}, 4);
  ASSERT_TRUE(doc.contains("error")) << doc.dump(2);
  EXPECT_EQ(doc["error"]["exit_code"], 4);
  for (const char* key : {"what", "why", "fix"}) {
    EXPECT_FALSE(doc["error"][key].get<std::string>().empty()) << key;
  }
}

TEST(CliEnv, MissingEnvironmentFileIsBadInput) {
  const ProcessResult r = run_qforge({"--env", "/nonexistent/qforge-env.json", "plugins"});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
}

TEST(CliPluginsCheck, MissingManifestIsBadInput) {
  const ProcessResult r = run_qforge({"plugins", "check", "/nonexistent/plugin.yaml"});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("/nonexistent/plugin.yaml"));
}

TEST(CliPluginsCheck, MalformedManifestIsBadInput) {
  TempDir dir;
  const auto file = dir.write("broken.yaml", "schema: 1\nid: [unterminated\n");
  const ProcessResult r = run_qforge({"plugins", "check", file.string()});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
}

TEST(CliPluginsCheck, MissingManifestArgumentIsUsageError) {
  const ProcessResult r = run_qforge({"plugins", "check"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST(CliPluginsCheck, BnbConformsWithEveryHookAnswered) {
  const nlohmann::json report = run_json({"plugins", "check", kBnbManifest, "--json"});
  EXPECT_EQ(report["plugin"], "bnb");
  EXPECT_EQ(report["passed"], true) << report.dump(2);
  std::set<std::string> names;
  for (const auto& c : report["checks"]) {
    names.insert(c["name"].get<std::string>());
    EXPECT_NE(c["result"], "fail") << c.dump(2);
  }
  for (const char* method : {"bitsandbytes_4bit", "bitsandbytes_8bit"}) {
    for (const char* hook :
         {"create", "validate_environment", "update_dtype", "update_device_map",
          "adjust_max_memory", "needs_quantization", "quantize", "postprocess"}) {
      EXPECT_THAT(names, Contains(std::string(method) + ": " + hook));
    }
  }
}

}  // namespace
}  // namespace qforge::test
