// The gptq plugin through its C ABI as the host sees it, and agreement with the manifest.
#include <gtest/gtest.h>
#include <qforge/qf_plugin.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>

#include "unit/plugins/support/test_host.hpp"

namespace {

using qforge::test::TestHost;
using qforge::test::TextSink;

TEST(GptqAbi, EntryMatchesTheManifestAndFlagsCalibration) {
  TestHost host;
  qf_plugin_info info{};
  info.struct_size = sizeof(qf_plugin_info);
  const qf_host_info host_info = host.host_info();
  ASSERT_EQ(qf_plugin_entry(&host_info, &info), nullptr);
  const YAML::Node manifest =
      YAML::LoadFile(std::string(QFORGE_SOURCE_DIR) + "/manifests/plugins/gptq.yaml");
  EXPECT_EQ(manifest["id"].as<std::string>(), info.plugin_id);
  EXPECT_EQ(manifest["version"].as<std::string>(), info.plugin_version);
  ASSERT_EQ(info.method_count, 1);
  EXPECT_STREQ(info.methods[0]->quant_method, "gptq");
  EXPECT_TRUE(manifest["methods"][0]["requires_calibration"].as<bool>());
  EXPECT_NE(info.methods[0]->flags & QF_METHOD_REQUIRES_CALIBRATION, 0u);
  qf_quantizer* q = nullptr;
  const qf_status* s = info.methods[0]->create(R"({"bits":5})", &q);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(host.status(s)->code, QF_CODE_INVALID_ARGUMENT);
  ASSERT_EQ(info.methods[0]->create(R"({"bits":4,"quant_method":"gptq"})", &q), nullptr);
  TextSink text;
  ASSERT_EQ(info.methods[0]->postprocess(q, "{}", text.get()), nullptr);
  EXPECT_EQ(nlohmann::json::parse(text.text())["checkpoint_format"], "gptq");
  info.methods[0]->destroy(q);
}

}  // namespace
