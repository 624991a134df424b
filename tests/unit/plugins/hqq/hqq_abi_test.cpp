// The hqq plugin through its C ABI (qf_plugin_entry, the method table, statuses), and
// agreement with the manifest.
#include <gtest/gtest.h>
#include <qforge/qf_plugin.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>

#include "unit/plugins/support/test_host.hpp"

namespace {

using qforge::test::Module;
using qforge::test::TestHost;
using qforge::test::TextSink;

class HqqAbi : public ::testing::Test {
 protected:
  void SetUp() override {
    info_.struct_size = sizeof(qf_plugin_info);
    const qf_host_info host_info = host_.host_info();
    ASSERT_EQ(qf_plugin_entry(&host_info, &info_), nullptr);
  }
  TestHost host_;
  qf_plugin_info info_{};
};

TEST_F(HqqAbi, EntryReportsTheManifestsIdVersionAndMethod) {
  const YAML::Node manifest =
      YAML::LoadFile(std::string(QFORGE_SOURCE_DIR) + "/manifests/plugins/hqq.yaml");
  EXPECT_EQ(manifest["id"].as<std::string>(), info_.plugin_id);
  EXPECT_EQ(manifest["version"].as<std::string>(), info_.plugin_version);
  EXPECT_EQ(manifest["library"].as<std::string>(), "hqq.so");
  ASSERT_EQ(info_.method_count, 1);
  EXPECT_EQ(manifest["methods"][0]["quant_method"].as<std::string>(),
            info_.methods[0]->quant_method);
  EXPECT_EQ(info_.methods[0]->flags, static_cast<uint32_t>(QF_METHOD_SERIALIZABLE));
}

TEST_F(HqqAbi, BadConfigIsAnInvalidArgumentStatus) {
  const qf_method& m = *info_.methods[0];
  qf_quantizer* q = nullptr;
  const qf_status* s = m.create(R"({"group_size":12})", &q);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(host_.status(s)->code, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(host_.status(s)->what.find("multiple of 8"), std::string::npos);
  EXPECT_EQ(q, nullptr);
}

TEST_F(HqqAbi, PostprocessAndDescribeThroughTheTable) {
  const qf_method& m = *info_.methods[0];
  qf_quantizer* q = nullptr;
  ASSERT_EQ(m.create(R"({"quant_method":"hqq","nbits":2,"group_size":32})", &q), nullptr);
  TextSink text;
  ASSERT_EQ(m.postprocess(q, "{}", text.get()), nullptr);
  const nlohmann::json config = nlohmann::json::parse(text.text());
  EXPECT_EQ(config["quant_method"], "hqq");
  EXPECT_EQ(config["quant_config"]["weight_quant_params"]["nbits"], 2);
  Module module("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, 256, 640);
  TextSink described;
  ASSERT_EQ(m.describe_quantized(q, module.ptr(), described.get()), nullptr);
  // axis 1, g 32: 5120 groups; 2-bit W_q [5120 / 4, 32].
  EXPECT_EQ(nlohmann::json::parse(described.text())["tensors"][0]["shape"],
            nlohmann::json::array({1280, 32}));
  m.destroy(q);
}

}  // namespace
