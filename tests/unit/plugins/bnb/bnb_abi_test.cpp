// The bnb plugin through its C ABI: qf_plugin_entry, the method tables and statuses made by a
// test host, exactly as the qforge host will see them; plus agreement with the manifest.
#include <gtest/gtest.h>
#include <qforge/qf_plugin.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cpu/half.hpp"
#include "unit/plugins/bnb/bnb_test_util.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::bnb {
namespace {

using nlohmann::json;
using qforge::test::Module;
using qforge::test::RecordedStatus;
using qforge::test::TestHost;
using qforge::test::TextSink;

const std::string kManifest = std::string(QFORGE_SOURCE_DIR) + "/manifests/plugins/bnb.yaml";

class BnbAbi : public ::testing::Test {
 protected:
  void SetUp() override {
    info_.struct_size = sizeof(qf_plugin_info);
    const qf_host_info host_info = host_.host_info();
    ASSERT_EQ(qf_plugin_entry(&host_info, &info_), nullptr);
    ASSERT_EQ(info_.method_count, 2);
  }

  const qf_method& method(const std::string& name) const {
    for (int32_t i = 0; i < info_.method_count; ++i) {
      if (name == info_.methods[i]->quant_method) return *info_.methods[i];
    }
    ADD_FAILURE() << "no method " << name;
    return *info_.methods[0];
  }

  // Creates an instance; fails the test when create returns a status.
  qf_quantizer* create(const std::string& quant_method, const std::string& config) {
    qf_quantizer* q = nullptr;
    const qf_status* s = method(quant_method).create(config.c_str(), &q);
    EXPECT_EQ(s, nullptr) << host_.status(s)->what;
    instances_.push_back({&method(quant_method), q});
    return q;
  }

  void TearDown() override {
    for (auto& [m, q] : instances_) m->destroy(q);
  }

  TestHost host_;
  qf_plugin_info info_{};
  std::vector<std::pair<const qf_method*, qf_quantizer*>> instances_;
};

TEST_F(BnbAbi, EntryReportsIdVersionAndBothMethods) {
  EXPECT_EQ(std::string(info_.plugin_id), "bnb");
  EXPECT_EQ(info_.abi_version, QF_ABI_VERSION);
  std::set<std::string> names;
  for (int32_t i = 0; i < info_.method_count; ++i) {
    const qf_method* m = info_.methods[i];
    EXPECT_EQ(m->struct_size, sizeof(qf_method));
    EXPECT_EQ(m->flags, QF_METHOD_SERIALIZABLE | QF_METHOD_TRAINABLE);
    EXPECT_EQ(m->reserved0, 0u);
    names.insert(m->quant_method);
  }
  EXPECT_EQ(names, (std::set<std::string>{"bitsandbytes_4bit", "bitsandbytes_8bit"}));
}

TEST_F(BnbAbi, RuntimeMatchesTheManifest) {
  const YAML::Node manifest = YAML::LoadFile(kManifest);
  EXPECT_EQ(manifest["id"].as<std::string>(), info_.plugin_id);
  EXPECT_EQ(manifest["version"].as<std::string>(), info_.plugin_version);
  EXPECT_EQ(manifest["library"].as<std::string>(), "bnb.so");
  EXPECT_EQ(manifest["abi"]["major"].as<int>(), QF_ABI_MAJOR);
  std::set<std::string> declared;
  for (const auto& m : manifest["methods"]) {
    const std::string name = m["quant_method"].as<std::string>();
    declared.insert(name);
    const bool calibration = m["requires_calibration"] && m["requires_calibration"].as<bool>();
    EXPECT_EQ(calibration, (method(name).flags & QF_METHOD_REQUIRES_CALIBRATION) != 0) << name;
    // Every preset makes an instance: a preset that create rejects would be a broken promise.
    for (const auto& preset : m["presets"]) {
      json config = json::object();
      for (const auto& kv : preset.second) {
        const std::string key = kv.first.as<std::string>();
        const std::string value = kv.second.as<std::string>();
        config[key] = value == "true" ? json(true) : value == "false" ? json(false) : json(value);
      }
      qf_quantizer* q = create(name, config.dump());
      EXPECT_NE(q, nullptr) << name << " preset " << preset.first.as<std::string>();
    }
  }
  std::set<std::string> runtime;
  for (int32_t i = 0; i < info_.method_count; ++i) runtime.insert(info_.methods[i]->quant_method);
  EXPECT_EQ(declared, runtime);
}

TEST_F(BnbAbi, ManifestConfigKeysCoverEveryKeyPostprocessWrites) {
  const YAML::Node manifest = YAML::LoadFile(kManifest);
  for (const auto& m : manifest["methods"]) {
    const std::string name = m["quant_method"].as<std::string>();
    std::set<std::string> keys;
    for (const auto& k : m["config_keys"]) keys.insert(k.as<std::string>());
    qf_quantizer* q = create(name, "{}");
    TextSink out;
    ASSERT_EQ(method(name).postprocess(q, "{}", out.get()), nullptr);
    const json written = json::parse(out.text());
    for (const auto& item : written.items()) {
      EXPECT_EQ(keys.count(item.key()), 1u) << name << ": config_keys lacks " << item.key();
    }
  }
}

TEST_F(BnbAbi, EntryRefusesAHostOfAnotherMajorWithAStatus) {
  qf_plugin_info info{};
  info.struct_size = sizeof(qf_plugin_info);
  const qf_host_info host_info =
      host_.host_info(QF_ABI_MAKE_VERSION(2, 0), QF_ABI_MAKE_VERSION(2, 3));
  const RecordedStatus* s = host_.status(qf_plugin_entry(&host_info, &info));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->code, QF_CODE_FAILED_PRECONDITION);
  EXPECT_NE(s->why.find("the host speaks 2.0..2.3"), std::string::npos) << s->why;
  EXPECT_EQ(info.abi_version, 0u);
}

TEST_F(BnbAbi, CreateTurnsAConfigErrorIntoAStatus) {
  qf_quantizer* q = reinterpret_cast<qf_quantizer*>(&info_);  // must be reset to NULL
  const RecordedStatus* s = host_.status(
      method("bitsandbytes_8bit").create(R"({"load_in_8bit": true, "llm_int8_threshold": 6})", &q));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->code, QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(s->what.find("llm_int8_threshold must be a float"), std::string::npos);
  EXPECT_NE(s->fix.find("6.0"), std::string::npos);
  EXPECT_EQ(q, nullptr);
}

TEST_F(BnbAbi, ValidateEnvironmentReportsTheV100AsAStatus) {
  const qf_method& m = method("bitsandbytes_8bit");
  qf_quantizer* q = create("bitsandbytes_8bit", test::config_8bit());
  const RecordedStatus* s = host_.status(
      m.validate_environment(q, test::v100_env().c_str(), test::request("cuda:0").c_str()));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->code, QF_CODE_FAILED_PRECONDITION);
  EXPECT_NE(s->why.find("7.0"), std::string::npos);
  EXPECT_FALSE(s->fix.empty());
  EXPECT_EQ(m.validate_environment(q, test::no_gpu_env().c_str(), test::request("cpu").c_str()),
            nullptr);
}

TEST_F(BnbAbi, ConfigurationHooksWriteToTheTextSink) {
  const qf_method& m = method("bitsandbytes_4bit");
  qf_quantizer* q = create("bitsandbytes_4bit", test::config_4bit());
  ASSERT_EQ(m.validate_environment(q, test::a100_env().c_str(), test::request(nullptr).c_str()),
            nullptr);

  TextSink dtype;
  ASSERT_EQ(m.update_dtype(q, "", dtype.get()), nullptr);
  EXPECT_EQ(dtype.text(), "float16");
  TextSink map;
  ASSERT_EQ(m.update_device_map(q, "null", map.get()), nullptr);
  EXPECT_EQ(json::parse(map.text()), (json{{"", "cuda:0"}}));
  TextSink memory;
  ASSERT_EQ(m.adjust_max_memory(q, R"({"cuda:0": 1000})", memory.get()), nullptr);
  EXPECT_EQ(json::parse(memory.text()), (json{{"cuda:0", 900}}));
}

TEST_F(BnbAbi, NeedsQuantizationWritesTheReasonForSkipping) {
  const qf_method& m = method("bitsandbytes_4bit");
  qf_quantizer* q = create("bitsandbytes_4bit",
                           R"({"load_in_4bit": true, "llm_int8_skip_modules": ["lm_head"]})");
  Module head("lm_head", QF_MODULE_LINEAR, 32, 8);
  int32_t needed = -1;
  TextSink reason;
  ASSERT_EQ(m.needs_quantization(q, head.ptr(), &needed, reason.get()), nullptr);
  EXPECT_EQ(needed, 0);
  EXPECT_EQ(reason.text(), "listed in llm_int8_skip_modules ('lm_head')");
  Module up("model.layers.0.mlp.up_proj", QF_MODULE_LINEAR, 32, 8);
  TextSink none;
  ASSERT_EQ(m.needs_quantization(q, up.ptr(), &needed, none.get()), nullptr);
  EXPECT_EQ(needed, 1);
  EXPECT_FALSE(none.written());
}

TEST_F(BnbAbi, DescribedTensorsPassCheckQuantizedAndAnEmptyListFails) {
  for (const char* name : {"bitsandbytes_4bit", "bitsandbytes_8bit"}) {
    const qf_method& m = method(name);
    qf_quantizer* q = create(name, "{}");
    Module mod("model.layers.0.mlp.down_proj", QF_MODULE_LINEAR, 16, 24, true);
    TextSink described;
    ASSERT_EQ(m.describe_quantized(q, mod.ptr(), described.get()), nullptr);
    qforge::test::TensorList list;
    const json description = json::parse(described.text());
    for (const auto& t : description["tensors"]) {
      const std::string dtype = t["dtype"].get<std::string>();
      const DLDataType d = dtype == "U8"    ? qforge::test::u8()
                           : dtype == "I8"  ? qforge::test::i8()
                           : dtype == "F32" ? qforge::test::f32()
                                            : qforge::test::f16();
      list.add(t["name"].get<std::string>(), d, t["shape"].get<std::vector<int64_t>>());
    }
    EXPECT_EQ(m.check_quantized(q, mod.ptr(), &list.get()), nullptr) << name;
    qforge::test::TensorList empty;
    const RecordedStatus* s = host_.status(m.check_quantized(q, mod.ptr(), &empty.get()));
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->code, QF_CODE_INVALID_ARGUMENT);
  }
}

TEST_F(BnbAbi, EightBitComputeHooksRunThroughTheAbi) {
  // quantize fills exactly the 8-bit set; dequantize / linear_forward without the module's
  // tensors answer INVALID_ARGUMENT (not UNIMPLEMENTED) through the status channel.
  const qf_method& m = method("bitsandbytes_8bit");
  qf_quantizer* q = create("bitsandbytes_8bit", "{}");
  Module mod("fc", QF_MODULE_LINEAR, 4, 4);
  qforge::test::HostTensor w(qforge::test::f16(), {4, 4});
  for (int i = 0; i < 16; ++i)
    w.data<uint16_t>()[i] = qforge::plugins::bnb::cpu::f32_to_f16(0.25f * (i - 8));
  qforge::test::TensorSink sink(host_);
  qforge::test::TensorList list;
  EXPECT_EQ(m.quantize(q, nullptr, mod.ptr(), &w.get(), nullptr, nullptr, sink.get()), nullptr);
  EXPECT_EQ(sink.tensors().size(), 3u);
  EXPECT_NE(sink.find("weight"), nullptr);
  EXPECT_NE(sink.find("SCB"), nullptr);
  EXPECT_NE(sink.find("weight_format"), nullptr);
  qforge::test::TensorSink dense(host_);
  const RecordedStatus* s =
      host_.status(m.dequantize(q, nullptr, mod.ptr(), &list.get(), dense.get()));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->code, QF_CODE_INVALID_ARGUMENT);
  qforge::test::HostTensor x(qforge::test::f16(), {1, 4}), y(qforge::test::f16(), {1, 4});
  s = host_.status(
      m.linear_forward(q, nullptr, mod.ptr(), &list.get(), &x.get(), nullptr, &y.get()));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->code, QF_CODE_INVALID_ARGUMENT);
  EXPECT_TRUE(dense.tensors().empty());
}

TEST_F(BnbAbi, LogsThroughTheHostOnlyAboveItsMinimumLevel) {
  const qf_method& m = method("bitsandbytes_4bit");
  qf_quantizer* q = create("bitsandbytes_4bit", "{}");
  TextSink dtype;
  host_.set_min_log_level(QF_LOG_WARN);
  ASSERT_EQ(m.update_dtype(q, "", dtype.get()), nullptr);
  EXPECT_TRUE(host_.logs().empty());
  host_.set_min_log_level(QF_LOG_INFO);
  ASSERT_EQ(m.update_dtype(q, "", dtype.get()), nullptr);
  ASSERT_EQ(host_.logs().size(), 1u);
  EXPECT_EQ(host_.logs()[0].level, QF_LOG_INFO);
  EXPECT_EQ(host_.logs()[0].component, "");  // NULL: the host fills in the plugin id
}

TEST_F(BnbAbi, PostprocessWritesTheHfQuantizationConfig) {
  const qf_method& m = method("bitsandbytes_8bit");
  qf_quantizer* q = create("bitsandbytes_8bit", test::config_8bit());
  TextSink out;
  ASSERT_EQ(m.postprocess(q, R"({"model_type": "opt"})", out.get()), nullptr);
  const json j = json::parse(out.text());
  EXPECT_EQ(j["quant_method"], "bitsandbytes");
  EXPECT_EQ(j["load_in_8bit"], true);
  EXPECT_EQ(j["_load_in_8bit"], true);
}

TEST_F(BnbAbi, DestroyAcceptsNull) {
  // The ABI promises destroy(NULL) is a no-op; a crash here fails the test.
  method("bitsandbytes_4bit").destroy(nullptr);
  method("bitsandbytes_8bit").destroy(nullptr);
}

}  // namespace
}  // namespace qforge::plugins::bnb
