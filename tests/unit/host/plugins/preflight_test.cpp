// Pre-flight validation (issue 2): each category fails before any weight is read with an
// actionable what/why/fix and exit code 3, through the real host and the in-tree bnb plugin.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qforge/host.hpp"
#include "support/fixture_paths.hpp"

namespace qforge {
namespace {

using ::testing::HasSubstr;

nlohmann::json bnb_config(bool eight_bit) {
  return eight_bit ? nlohmann::json{{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}}
                   : nlohmann::json{{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}};
}

nlohmann::json request_on(const std::string& device, nlohmann::json device_map = nullptr) {
  return {{"pre_quantized", false},
          {"dtype", nullptr},
          {"device", device},
          {"device_map", std::move(device_map)}};
}

void expect_actionable_preflight(const Error& e) {
  EXPECT_EQ(e.exit_code(), ExitCode::kEnvironment) << e.to_string();
  EXPECT_FALSE(e.summary().empty());
  EXPECT_FALSE(e.why().empty()) << e.to_string();
  EXPECT_FALSE(e.fix().empty()) << e.to_string();
}

Error validate_bnb(const Environment& env, bool eight_bit, const nlohmann::json& request) {
  Host host(fixtures::isolated_options({QFORGE_TEST_BUILD_PLUGIN_DIR}, env));
  auto quantizer = host.create_quantizer(
      "bnb", eight_bit ? "bitsandbytes_8bit" : "bitsandbytes_4bit", bnb_config(eight_bit));
  EXPECT_TRUE(quantizer.ok()) << quantizer.error().to_string();
  Status status = quantizer.value()->validate_environment(env.to_json(), request);
  EXPECT_FALSE(status.ok());
  return status.ok() ? internal_error("validated", "expected a refusal") : status.error();
}

TEST(Preflight, NoCudaWhenTheRequestNeedsItIsExitCode3) {
  const Error e = validate_bnb(fixtures::cpu_only_environment(), false, request_on("cuda:0"));
  expect_actionable_preflight(e);
  EXPECT_THAT(e.to_string(), HasSubstr("GPU"));
}

TEST(Preflight, ComputeCapabilityTooLowIsExitCode3) {
  const Error e =
      validate_bnb(fixtures::environment_with_cuda_gpu(7, 0), true, request_on("cuda:0"));
  expect_actionable_preflight(e);
  EXPECT_THAT(e.to_string(), HasSubstr("7.5"));
}

TEST(Preflight, CpuOffloadWithoutTheOffloadFlagIsExitCode3) {
  const nlohmann::json map = {{"model.layers.0", "cuda:0"}, {"model.layers.1", "cpu"}};
  const Error e =
      validate_bnb(fixtures::environment_with_cuda_gpu(9, 0), true, request_on("cuda:0", map));
  expect_actionable_preflight(e);
  EXPECT_THAT(e.to_string(), HasSubstr("llm_int8_enable_fp32_cpu_offload"));
}

TEST(Preflight, ConflictingBnbFlagsAreExitCode3) {
  Host host(
      fixtures::isolated_options({QFORGE_TEST_BUILD_PLUGIN_DIR}, fixtures::cpu_only_environment()));
  ConfigRequest request;
  request.user_config = nlohmann::json{
      {"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"load_in_8bit", true}};
  auto resolved = host.resolve(request);
  ASSERT_FALSE(resolved.ok());
  expect_actionable_preflight(resolved.error());
  EXPECT_THAT(resolved.error().to_string(), HasSubstr("only one can be used"));
}

TEST(Preflight, BackendLibraryMissingIsExitCode3) {
  Host host(fixtures::isolated_options({fixtures::fixture_dir("missing_library")},
                                       fixtures::cpu_only_environment()));
  const auto records = host.plugins();
  ASSERT_FALSE(records.empty());
  ASSERT_TRUE(records.front().manifest.has_value());
  SelectionRequest request;
  request.quant_method = records.front().manifest->methods.front().quant_method;
  request.request = request_on("cpu");
  const Selection selection = host.select(request);
  ASSERT_FALSE(selection.ok());
  const Error e = selection.error();
  expect_actionable_preflight(e);
  EXPECT_THAT(e.to_string(), HasSubstr("not found"));
}

}  // namespace
}  // namespace qforge
