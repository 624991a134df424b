// The fp8 plugin through its C ABI (qf_plugin_entry, the method table, statuses), as the qforge
// host sees it, and agreement with the manifest.
#include <gtest/gtest.h>
#include <qforge/qf_plugin.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "unit/plugins/support/test_host.hpp"

namespace {

using qforge::test::Module;
using qforge::test::TestHost;
using qforge::test::TextSink;

class Fp8Abi : public ::testing::Test {
 protected:
  void SetUp() override {
    info_.struct_size = sizeof(qf_plugin_info);
    const qf_host_info host_info = host_.host_info();
    ASSERT_EQ(qf_plugin_entry(&host_info, &info_), nullptr);
  }
  TestHost host_;
  qf_plugin_info info_{};
};

TEST_F(Fp8Abi, EntryReportsTheManifestsIdVersionAndMethods) {
  const YAML::Node manifest =
      YAML::LoadFile(std::string(QFORGE_SOURCE_DIR) + "/manifests/plugins/fp8.yaml");
  EXPECT_EQ(manifest["id"].as<std::string>(), info_.plugin_id);
  EXPECT_EQ(manifest["version"].as<std::string>(), info_.plugin_version);
  EXPECT_EQ(manifest["library"].as<std::string>(), "fp8.so");
  std::set<std::string> in_manifest;
  std::set<std::string> in_plugin;
  for (const auto& m : manifest["methods"]) in_manifest.insert(m["quant_method"].as<std::string>());
  for (int32_t i = 0; i < info_.method_count; ++i) {
    in_plugin.insert(info_.methods[i]->quant_method);
    EXPECT_EQ(info_.methods[i]->flags, static_cast<uint32_t>(QF_METHOD_SERIALIZABLE));
  }
  EXPECT_EQ(in_manifest, in_plugin);
}

TEST_F(Fp8Abi, BadConfigIsAnInvalidArgumentStatus) {
  const qf_method& m = *info_.methods[0];
  qf_quantizer* q = nullptr;
  const qf_status* s = m.create(R"({"weight_block_size":[0,128]})", &q);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(host_.status(s)->code, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(host_.status(s)->what.find("positive integers"), std::string::npos);
  EXPECT_EQ(q, nullptr);
}

TEST_F(Fp8Abi, PostprocessAndDescribeThroughTheTable) {
  const qf_method& m = *info_.methods[0];
  qf_quantizer* q = nullptr;
  ASSERT_EQ(m.create(R"({"quant_method":"fp8"})", &q), nullptr);
  TextSink text;
  ASSERT_EQ(m.postprocess(q, "{}", text.get()), nullptr);
  const nlohmann::json config = nlohmann::json::parse(text.text());
  EXPECT_EQ(config["quant_method"], "fp8");
  EXPECT_EQ(config["weight_block_size"], nlohmann::json::array({128, 128}));
  Module module("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, 256, 640);
  TextSink described;
  ASSERT_EQ(m.describe_quantized(q, module.ptr(), described.get()), nullptr);
  EXPECT_EQ(nlohmann::json::parse(described.text())["tensors"][1]["shape"],
            nlohmann::json::array({2, 5}));
  m.destroy(q);
}

}  // namespace
