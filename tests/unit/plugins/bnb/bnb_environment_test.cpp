// validate_environment: transformers v5 rules on simulated environments (FORMATS.md §2.2-2.3).
#include "bnb_environment.hpp"

#include <gtest/gtest.h>

#include <string>

#include "bnb_quantizer.hpp"
#include "unit/plugins/bnb/bnb_test_util.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::bnb {
namespace {

using nlohmann::json;
using test::a100_env;
using test::cuda_gpu;
using test::env_json;
using test::expect_error;
using test::no_gpu_env;
using test::request;
using test::v100_env;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(BnbValidateEnvironment, AcceptsCpuOnAMachineWithoutGpu) {
  Bnb4BitQuantizer q4(test::config_4bit());
  Bnb8BitQuantizer q8(test::config_8bit());
  EXPECT_NO_THROW(q4.validate_environment(no_gpu_env(), request("cpu")));
  EXPECT_NO_THROW(q8.validate_environment(no_gpu_env(), request("cpu")));
}

TEST(BnbValidateEnvironment, RejectsCudaWhenNoGpuIsFound) {
  Bnb4BitQuantizer q(test::config_4bit());
  const auto e = expect_error([&] { q.validate_environment(no_gpu_env(), request("cuda:0")); },
                              QF_CODE_FAILED_PRECONDITION);
  EXPECT_TRUE(contains(e.what(), "No GPU found. A GPU is needed for quantization")) << e.what();
  EXPECT_TRUE(contains(e.why(), "no CUDA device (libcuda.so.1 not found)")) << e.why();
  EXPECT_TRUE(contains(e.fix(), "--device cpu")) << e.fix();
}

TEST(BnbValidateEnvironment, RejectsACudaIndexTheMachineLacks) {
  Bnb8BitQuantizer q(test::config_8bit());
  const auto e = expect_error([&] { q.validate_environment(a100_env(), request("cuda:1")); },
                              QF_CODE_FAILED_PRECONDITION);
  EXPECT_TRUE(contains(e.why(), "cuda:1")) << e.why();
  EXPECT_TRUE(contains(e.why(), "cuda:0 (NVIDIA A100-SXM4-80GB)")) << e.why();
  EXPECT_TRUE(contains(e.fix(), "cuda:0")) << e.fix();
}

TEST(BnbValidateEnvironment, RejectsRocmWithoutRocmDevice) {
  Bnb4BitQuantizer q(test::config_4bit());
  expect_error([&] { q.validate_environment(a100_env(), request("rocm:0")); },
               QF_CODE_FAILED_PRECONDITION);
  EXPECT_NO_THROW(q.validate_environment(env_json({test::rocm_gpu(0, "AMD Instinct MI250X")}),
                                         request("rocm:0")));
}

TEST(BnbValidateEnvironment, RejectsInt8OnComputeCapabilityBelow75) {
  Bnb8BitQuantizer q(test::config_8bit());
  const auto e = expect_error([&] { q.validate_environment(v100_env(), request("cuda:0")); },
                              QF_CODE_FAILED_PRECONDITION);
  EXPECT_TRUE(contains(e.what(), "Tesla V100-SXM2-16GB")) << e.what();
  EXPECT_TRUE(contains(e.why(), "compute capability 7.0 found, 7.5 or newer needed")) << e.why();
  EXPECT_TRUE(contains(e.fix(), "bitsandbytes_4bit")) << e.fix();
}

TEST(BnbValidateEnvironment, AcceptsInt8FromComputeCapability75) {
  Bnb8BitQuantizer q(test::config_8bit());
  EXPECT_NO_THROW(
      q.validate_environment(env_json({cuda_gpu(0, "Tesla T4", "7.5")}), request("cuda:0")));
  EXPECT_NO_THROW(
      q.validate_environment(env_json({cuda_gpu(0, "RTX 4090", "8.9")}), request("cuda")));
  EXPECT_NO_THROW(q.validate_environment(
      env_json({cuda_gpu(0, "GTX 1080", "6.1"), cuda_gpu(1, "H100", "9.0")}), request("cuda:1")));
}

TEST(BnbValidateEnvironment, Accepts4BitOnEveryGpu) {
  Bnb4BitQuantizer q(test::config_4bit());
  EXPECT_NO_THROW(q.validate_environment(v100_env(), request("cuda:0")));
  EXPECT_NO_THROW(
      q.validate_environment(env_json({cuda_gpu(0, "Tesla P40", "6.1")}), request("cuda:0")));
}

TEST(BnbValidateEnvironment, ChecksInt8ComputeCapabilityOfDeviceMapGpus) {
  Bnb8BitQuantizer q(test::config_8bit());
  expect_error(
      [&] {
        q.validate_environment(v100_env(), request(nullptr, {{"model", 0}}));
      },
      QF_CODE_FAILED_PRECONDITION);
  expect_error(
      [&] {
        q.validate_environment(v100_env(), request(nullptr, {{"model", "cuda:0"}}));
      },
      QF_CODE_FAILED_PRECONDITION);
  // No device and no map: the default map would put the model on cuda:0.
  expect_error([&] { q.validate_environment(v100_env(), request(nullptr)); },
               QF_CODE_FAILED_PRECONDITION);
}

TEST(BnbValidateEnvironment, RejectsCpuOffloadWithoutTheFlag) {
  Bnb4BitQuantizer q(test::config_4bit());
  const json map = {{"model.embed_tokens", "cuda:0"},
                    {"model.layers.0", "cuda:0"},
                    {"model.layers.1", "cpu"},
                    {"lm_head", "cpu"}};
  const auto e = expect_error([&] { q.validate_environment(a100_env(), request("cuda:0", map)); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(e.what(),
                       "Some modules are dispatched on the CPU or the disk. Make sure "
                       "you have enough GPU RAM to fit the quantized model. If you "
                       "want to dispatch the model on the CPU or the disk while "
                       "keeping these modules in 32-bit, you need to set "
                       "`llm_int8_enable_fp32_cpu_offload=True`"))
      << e.what();
  EXPECT_TRUE(contains(e.why(), "model.layers.1 -> cpu")) << e.why();
  EXPECT_TRUE(contains(e.fix(), "llm_int8_enable_fp32_cpu_offload: true")) << e.fix();
}

TEST(BnbValidateEnvironment, RejectsDiskOffloadWithoutTheFlag) {
  Bnb8BitQuantizer q(test::config_8bit());
  const json map = {{"model.layers.0", "cuda:0"}, {"model.layers.1", "disk"}};
  const auto e = expect_error([&] { q.validate_environment(a100_env(), request("cuda:0", map)); },
                              QF_CODE_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(e.why(), "model.layers.1 -> disk")) << e.why();
}

TEST(BnbValidateEnvironment, AcceptsCpuOffloadWithTheFlag) {
  Bnb8BitQuantizer q(R"({"load_in_8bit": true, "llm_int8_enable_fp32_cpu_offload": true})");
  const json map = {{"model.layers.0", "cuda:0"}, {"model.layers.1", "cpu"}, {"lm_head", "disk"}};
  EXPECT_NO_THROW(q.validate_environment(a100_env(), request("cuda:0", map)));
}

TEST(BnbValidateEnvironment, AcceptsAnAllCpuDeviceMap) {
  Bnb4BitQuantizer q(test::config_4bit());
  EXPECT_NO_THROW(q.validate_environment(
      no_gpu_env(), request("cpu", {{"model.layers.0", "cpu"}, {"lm_head", "cpu"}})));
  EXPECT_NO_THROW(q.validate_environment(a100_env(), request("cpu", {{"", "cpu"}})));
}

TEST(BnbValidateEnvironment, ExemptsModulesListedInSkipModulesFromTheOffloadCheck) {
  const json map = {{"model", "cuda:0"}, {"lm_head", "cpu"}};
  Bnb4BitQuantizer skipping(R"({"load_in_4bit": true, "llm_int8_skip_modules": ["lm_head"]})");
  EXPECT_NO_THROW(skipping.validate_environment(a100_env(), request("cuda:0", map)));
  Bnb4BitQuantizer plain(test::config_4bit());
  expect_error([&] { plain.validate_environment(a100_env(), request("cuda:0", map)); },
               QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbValidateEnvironment, RejectsFromTfAndFromFlax) {
  Bnb4BitQuantizer q(test::config_4bit());
  for (const char* key : {"from_tf", "from_flax"}) {
    json r = json::parse(request("cpu"));
    r[key] = true;
    const auto e = expect_error([&] { q.validate_environment(no_gpu_env(), r.dump()); },
                                QF_CODE_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(e.what(), "from tf/flax weights is currently not supported")) << key;
  }
}

TEST(BnbValidateEnvironment, RejectsDeviceMapGpusTheMachineLacks) {
  Bnb4BitQuantizer q(test::config_4bit());
  const auto e = expect_error(
      [&] {
        q.validate_environment(a100_env(), request(nullptr, {{"model", "cuda:3"}}));
      },
      QF_CODE_FAILED_PRECONDITION);
  EXPECT_TRUE(contains(e.why(), "device_map puts model on cuda:3")) << e.why();
}

TEST(BnbValidateEnvironment, RejectsDeviceMapValuesThatAreNotDevices) {
  Bnb4BitQuantizer q(test::config_4bit());
  expect_error(
      [&] {
        q.validate_environment(a100_env(), request(nullptr, {{"model", "gpu0"}}));
      },
      QF_CODE_INVALID_ARGUMENT);
  expect_error([&] { q.validate_environment(a100_env(), request(nullptr, "bogus")); },
               QF_CODE_INVALID_ARGUMENT);
  expect_error([&] { q.validate_environment(a100_env(), request("tpu")); },
               QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbValidateEnvironment, AcceptsStrategyAndDeviceStringsAsDeviceMap) {
  Bnb4BitQuantizer q(test::config_4bit());
  EXPECT_NO_THROW(q.validate_environment(a100_env(), request(nullptr, "auto")));
  EXPECT_NO_THROW(q.validate_environment(a100_env(), request(nullptr, "cuda:0")));
  expect_error([&] { q.validate_environment(a100_env(), request(nullptr, "cuda:2")); },
               QF_CODE_FAILED_PRECONDITION);
}

TEST(BnbValidateEnvironment, RejectsMalformedEnvironmentAndRequest) {
  Bnb4BitQuantizer q(test::config_4bit());
  expect_error([&] { q.validate_environment("{not json", request("cpu")); },
               QF_CODE_INVALID_ARGUMENT);
  expect_error(
      [&] { q.validate_environment(R"({"devices": [{"backend": "cuda"}]})", request("cpu")); },
      QF_CODE_INVALID_ARGUMENT);
  expect_error(
      [&] {
        q.validate_environment(
            R"({"devices": [{"backend": "cuda", "index": 0, "compute_capability": "eight"}]})",
            request("cpu"));
      },
      QF_CODE_INVALID_ARGUMENT);
  expect_error([&] { q.validate_environment(no_gpu_env(), R"({"pre_quantized": "yes"})"); },
               QF_CODE_INVALID_ARGUMENT);
}

TEST(BnbValidateEnvironment, ReadsComputeCapabilityFromMajorMinorIntegers) {
  Bnb8BitQuantizer q(test::config_8bit());
  const std::string env =
      R"({"devices": [{"backend": "cuda", "index": 0, "cc_major": 7, "cc_minor": 0}]})";
  expect_error([&] { q.validate_environment(env, request("cuda:0")); },
               QF_CODE_FAILED_PRECONDITION);
}

TEST(BnbValidateEnvironment, TreatsAnUnreadComputeCapabilityAsUnknown) {
  // The probe writes "0.0" when it could not read the attribute: warn, do not refuse.
  qforge::test::TestHost host;
  sdk::g_host = host.api();
  Bnb8BitQuantizer q(test::config_8bit());
  EXPECT_NO_THROW(
      q.validate_environment(env_json({cuda_gpu(0, "mystery", "0.0")}), request("cuda:0")));
  const auto logs = host.logs();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].level, QF_LOG_WARN);
  EXPECT_TRUE(contains(logs[0].message, "LLM.int8 needs >= 7.5")) << logs[0].message;
}

TEST(BnbParseEnvironment, ReadsTheHostsReport) {
  const EnvironmentFacts env = parse_environment(env_json(
      {cuda_gpu(0, "NVIDIA H100 80GB HBM3", "9.0"), test::rocm_gpu(0, "AMD Instinct MI250X")},
      "ok: 1 device(s)"));
  ASSERT_EQ(env.gpus.size(), 2u);
  EXPECT_EQ(env.gpus[0].backend, "cuda");
  EXPECT_EQ(env.gpus[0].cc_major, 9);
  EXPECT_EQ(env.gpus[0].cc_minor, 0);
  EXPECT_EQ(env.gpus[1].backend, "rocm");
  EXPECT_EQ(env.gpus[1].cc_major, -1);
  EXPECT_EQ(env.cuda_status, "ok: 1 device(s)");
  EXPECT_EQ(env.first("rocm")->name, "AMD Instinct MI250X");
  EXPECT_EQ(env.find("cuda", 1), nullptr);
}

TEST(BnbParseDevice, ReadsDeviceSpellings) {
  EXPECT_EQ(parse_device("cpu")->text(), "cpu");
  EXPECT_EQ(parse_device("disk")->text(), "disk");
  EXPECT_EQ(parse_device("cuda")->text(), "cuda:0");
  EXPECT_EQ(parse_device("cuda:12")->text(), "cuda:12");
  EXPECT_EQ(parse_device("rocm:1")->text(), "rocm:1");
  EXPECT_EQ(parse_device(3)->kind, "gpu");
  EXPECT_FALSE(parse_device("cuda:").has_value());
  EXPECT_FALSE(parse_device("cuda:x").has_value());
  EXPECT_FALSE(parse_device("auto").has_value());
  EXPECT_FALSE(parse_device(-1).has_value());
  EXPECT_FALSE(parse_device(nullptr).has_value());
}

}  // namespace
}  // namespace qforge::plugins::bnb
