// The awq plugin through its C ABI as the host sees it, and agreement with the manifest.
#include <gtest/gtest.h>
#include <qforge/qf_plugin.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>

#include "unit/plugins/support/test_host.hpp"

namespace {

using qforge::test::TestHost;
using qforge::test::TextSink;

TEST(AwqAbi, EntryMatchesTheManifestAndFlagsCalibration) {
  TestHost host;
  qf_plugin_info info{};
  info.struct_size = sizeof(qf_plugin_info);
  const qf_host_info host_info = host.host_info();
  ASSERT_EQ(qf_plugin_entry(&host_info, &info), nullptr);
  const YAML::Node manifest =
      YAML::LoadFile(std::string(QFORGE_SOURCE_DIR) + "/manifests/plugins/awq.yaml");
  EXPECT_EQ(manifest["id"].as<std::string>(), info.plugin_id);
  EXPECT_EQ(manifest["version"].as<std::string>(), info.plugin_version);
  ASSERT_EQ(info.method_count, 1);
  EXPECT_STREQ(info.methods[0]->quant_method, "awq");
  EXPECT_TRUE(manifest["methods"][0]["requires_calibration"].as<bool>());
  EXPECT_NE(info.methods[0]->flags & QF_METHOD_REQUIRES_CALIBRATION, 0u);
  // Every key the config reads is declared, so the host does not warn about it.
  std::string keys;
  for (const auto& k : manifest["methods"][0]["config_keys"]) keys += k.as<std::string>() + " ";
  for (const char* k : {"bits", "group_size", "zero_point", "version", "backend",
                        "modules_to_not_convert", "data_free", "w_bit", "q_group_size"}) {
    EXPECT_NE(keys.find(std::string(k) + " "), std::string::npos) << k;
  }
  qf_quantizer* q = nullptr;
  const qf_status* s = info.methods[0]->create(R"({"bits":8})", &q);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(host.status(s)->code, QF_CODE_INVALID_ARGUMENT);
  s = info.methods[0]->create(R"({"version":"exllama"})", &q);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(host.status(s)->code, QF_CODE_UNIMPLEMENTED);
  ASSERT_EQ(info.methods[0]->create(R"({"quant_method":"awq","version":"GEMV"})", &q), nullptr);
  TextSink text;
  ASSERT_EQ(info.methods[0]->postprocess(q, "{}", text.get()), nullptr);
  const nlohmann::json written = nlohmann::json::parse(text.text());
  EXPECT_EQ(written["version"], "gemv");
  EXPECT_EQ(written["quant_method"], "awq");
  info.methods[0]->destroy(q);
}

}  // namespace
