// What the host does with what a plugin returns (RELIABILITY.md PL8, PL9): garbage output behind
// a success status, broken statuses and escaping exceptions are each turned into a clear
// qforge::Error with no outputs, and the plugin (and host) stay usable afterwards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <qforge/qf_plugin.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/host.hpp"
#include "qforge/tensor.hpp"
#include "support/fixture_paths.hpp"

namespace qforge {
namespace {

using fixtures::fixture_dir;
using fixtures::isolated_options;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr int64_t kRows = 4;  // out_features
constexpr int64_t kCols = 8;  // in_features

ModuleInfo linear_module() {
  ModuleInfo m;
  m.name = "model.layers.0.mlp.up_proj";
  m.kind = QF_MODULE_LINEAR;
  m.in_features = kCols;
  m.out_features = kRows;
  m.weight_dtype = DLDataType{kDLFloat, 32, 1};
  return m;
}

// Row r holds (c - 3.5) * (r + 1): distinct absmax per row, no zero row.
Tensor make_weight() {
  auto w = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {kRows, kCols});
  EXPECT_TRUE(w.ok());
  Tensor t = std::move(w).value();
  float* p = t.data_as<float>();
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t c = 0; c < kCols; ++c) {
      p[r * kCols + c] = (static_cast<float>(c) - 3.5f) * static_cast<float>(r + 1);
    }
  }
  return t;
}

const NamedTensor* find_output(const std::vector<NamedTensor>& outputs, const std::string& name) {
  for (const auto& t : outputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// Checks fault_rtn's outputs against a re-computation of round(w / (absmax / 127)).
void expect_correct_quantization(const std::vector<NamedTensor>& outputs, const Tensor& weight) {
  ASSERT_EQ(outputs.size(), 2u);
  const NamedTensor* qweight = find_output(outputs, "qweight");
  const NamedTensor* scales = find_output(outputs, "scales");
  ASSERT_NE(qweight, nullptr);
  ASSERT_NE(scales, nullptr);
  ASSERT_EQ(dtype_to_string(qweight->tensor.dtype()), "I8");
  ASSERT_EQ(dtype_to_string(scales->tensor.dtype()), "F32");
  ASSERT_EQ(qweight->tensor.shape(), (std::vector<int64_t>{kRows, kCols}));
  ASSERT_EQ(scales->tensor.shape(), (std::vector<int64_t>{kRows}));
  const float* w = weight.data_as<float>();
  const int8_t* q = qweight->tensor.data_as<int8_t>();
  const float* s = scales->tensor.data_as<float>();
  for (int64_t r = 0; r < kRows; ++r) {
    const float absmax = 3.5f * static_cast<float>(r + 1);
    EXPECT_FLOAT_EQ(s[r], absmax / 127.0f) << "row " << r;
    for (int64_t c = 0; c < kCols; ++c) {
      EXPECT_EQ(q[r * kCols + c], static_cast<int8_t>(std::lround(w[r * kCols + c] / s[r])))
          << "row " << r << " column " << c;
    }
  }
}

std::unique_ptr<Quantizer> create(Host& host, const std::string& plugin_id,
                                  const nlohmann::json& config) {
  auto q = host.create_quantizer(plugin_id, "fault_rtn", config);
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().to_string());
  return q.ok() ? std::move(q).value() : nullptr;
}

// ------------------------------------------------------------------ PL8 garbage output

struct GarbageCase {
  const char* fault;                  // the fixture's config {"fault": ...}
  ErrorCode code;                     // what the host reports
  std::vector<std::string> mentions;  // each must appear in Error::to_string()
};

std::ostream& operator<<(std::ostream& os, const GarbageCase& c) { return os << c.fault; }

class GarbageOutput : public ::testing::TestWithParam<GarbageCase> {};

TEST_P(GarbageOutput, IsRejectedWithAPluginErrorAndNoOutputs) {
  const GarbageCase& c = GetParam();
  Host host(isolated_options({fixture_dir("qf_fault_garbage")}));
  auto quantizer = create(host, "fault_garbage", {{"fault", c.fault}});
  ASSERT_NE(quantizer, nullptr);
  const Tensor weight = make_weight();

  auto result = quantizer->quantize(linear_module(), weight, nullptr);
  ASSERT_FALSE(result.ok()) << "garbage '" << c.fault << "' was accepted";
  const Error& error = result.error();
  EXPECT_EQ(error.exit_code(), ExitCode::kPlugin) << error.to_string();
  EXPECT_EQ(error.code(), c.code) << error.to_string();
  EXPECT_THAT(error.to_string(), AllOf(HasSubstr("fault_garbage"), HasSubstr("quantize")))
      << "the error must name the plugin and the hook";
  for (const auto& text : c.mentions) EXPECT_THAT(error.to_string(), HasSubstr(text));
  // Clear means why and how to fix, even when the plugin's own status carried no text.
  EXPECT_FALSE(error.why().empty()) << "no 'why' in: " << error.to_string();
  EXPECT_FALSE(error.fix().empty()) << "no 'fix' in: " << error.to_string();

  // The plugin still serves a healthy call afterwards: nothing was left half-done.
  auto healthy = create(host, "fault_garbage", nlohmann::json::object());
  ASSERT_NE(healthy, nullptr);
  auto ok = healthy->quantize(linear_module(), weight, nullptr);
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  expect_correct_quantization(ok.value(), weight);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, GarbageOutput,
    ::testing::Values(GarbageCase{"nan_scales", ErrorCode::kInternal, {"scales", "element 0"}},
                      GarbageCase{"inf_scales", ErrorCode::kInternal, {"scales", "element 3"}},
                      GarbageCase{"extra_tensor", ErrorCode::kInternal, {"zeros_extra"}},
                      GarbageCase{"missing_tensor", ErrorCode::kInternal, {"scales"}},
                      GarbageCase{"wrong_dtype", ErrorCode::kInternal, {"scales", "F16", "F32"}},
                      GarbageCase{"wrong_shape", ErrorCode::kInternal, {"scales", "[5]", "[4]"}},
                      GarbageCase{"no_outputs", ErrorCode::kInternal, {}},
                      GarbageCase{"error_with_partial_output",
                                  ErrorCode::kInternal,
                                  {"failed after writing 'qweight'"}},
                      GarbageCase{"null_status_text", ErrorCode::kInternal, {}},
                      GarbageCase{"bogus_status", ErrorCode::kInternal, {"status"}}),
    [](const ::testing::TestParamInfo<GarbageCase>& param) {
      return std::string(param.param.fault);
    });

TEST(ResultValidation, UnterminatedStatusTextIsCutAtTheHostsBound) {
  Host host(isolated_options({fixture_dir("qf_fault_garbage")}));
  auto quantizer = create(host, "fault_garbage", {{"fault", "unterminated_status_text"}});
  ASSERT_NE(quantizer, nullptr);
  auto result = quantizer->quantize(linear_module(), make_weight(), nullptr);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().exit_code(), ExitCode::kPlugin);
  // The plugin's text has no NUL in its 70000 bytes; the host reads at most 64 KiB of it.
  EXPECT_THAT(result.error().summary(), HasSubstr("xxxxxxxx"));
  EXPECT_LE(result.error().summary().size(), size_t{64 * 1024 + 1024});
}

TEST(ResultValidation, HealthyPluginOutputPassesEveryCheck) {
  Host host(isolated_options({fixture_dir("qf_fault_ok")}));
  auto quantizer = create(host, "fault_ok", nlohmann::json::object());
  ASSERT_NE(quantizer, nullptr);
  const Tensor weight = make_weight();
  const ModuleInfo module = linear_module();

  auto described = quantizer->describe_quantized(module);
  ASSERT_TRUE(described.ok()) << described.error().to_string();
  EXPECT_EQ(described.value()["tensors"].size(), 2u);

  auto outputs = quantizer->quantize(module, weight, nullptr);
  ASSERT_TRUE(outputs.ok()) << outputs.error().to_string();
  expect_correct_quantization(outputs.value(), weight);

  Status checked = quantizer->check_quantized(module, outputs.value());
  EXPECT_TRUE(checked.ok()) << checked.error().to_string();

  auto dense = quantizer->dequantize(module, outputs.value());
  ASSERT_TRUE(dense.ok()) << dense.error().to_string();
  const NamedTensor* w = find_output(dense.value(), "weight");
  ASSERT_NE(w, nullptr);
  for (int64_t i = 0; i < kRows * kCols; ++i) {
    const int64_t r = i / kCols;
    // Round to nearest: off by at most half a step of that row's scale.
    EXPECT_NEAR(w->tensor.data_as<float>()[i], weight.data_as<float>()[i],
                0.5f * 3.5f * static_cast<float>(r + 1) / 127.0f + 1e-6f)
        << "element " << i;
  }

  auto config = quantizer->postprocess(nlohmann::json::object());
  ASSERT_TRUE(config.ok()) << config.error().to_string();
  EXPECT_EQ(config.value().value("quant_method", ""), "fault_rtn");
}

TEST(ResultValidation, CheckQuantizedRejectsTensorsOfTheWrongDtypeAsBadInput) {
  Host host(isolated_options({fixture_dir("qf_fault_ok")}));
  auto quantizer = create(host, "fault_ok", nlohmann::json::object());
  ASSERT_NE(quantizer, nullptr);
  std::vector<NamedTensor> tensors;
  tensors.push_back({"qweight", Tensor::zeros(DLDataType{kDLInt, 8, 1}, {kRows, kCols}).value()});
  tensors.push_back({"scales", Tensor::zeros(DLDataType{kDLFloat, 16, 1}, {kRows}).value()});
  Status status = quantizer->check_quantized(linear_module(), tensors);
  ASSERT_FALSE(status.ok());
  // The plugin answered INVALID_ARGUMENT: the checkpoint is bad, not the plugin.
  EXPECT_EQ(status.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.error().exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(status.error().to_string(), AllOf(HasSubstr("scales"), HasSubstr("F16")));
}

TEST(ResultValidation, NonFiniteWeightIsRefusedByThePluginNamingTheElement) {
  Host host(isolated_options({fixture_dir("qf_fault_ok")}));
  auto quantizer = create(host, "fault_ok", nlohmann::json::object());
  ASSERT_NE(quantizer, nullptr);
  Tensor weight = make_weight();
  weight.data_as<float>()[2 * kCols + 5] = std::nanf("");
  auto result = quantizer->quantize(linear_module(), weight, nullptr);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(result.error().to_string(),
              AllOf(HasSubstr("model.layers.0.mlp.up_proj"), HasSubstr("row 2, column 5")));
}

// ------------------------------------------------------------------ PL9 exceptions

TEST(ResultValidation, ExceptionInQuantizeBecomesInternalWithItsText) {
  Host host(isolated_options({fixture_dir("qf_fault_throws")}));
  auto quantizer = create(host, "fault_throws", nlohmann::json::object());
  ASSERT_NE(quantizer, nullptr);
  auto result = quantizer->quantize(linear_module(), make_weight(), nullptr);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
  EXPECT_EQ(result.error().exit_code(), ExitCode::kPlugin);
  EXPECT_THAT(result.error().to_string(),
              HasSubstr("fault_throws: deliberate std::runtime_error in quantize"));
}

TEST(ResultValidation, NonStandardExceptionBecomesInternal) {
  Host host(isolated_options({fixture_dir("qf_fault_throws")}));
  auto quantizer = create(host, "fault_throws", {{"fault", "throw_unknown"}});
  ASSERT_NE(quantizer, nullptr);
  auto result = quantizer->quantize(linear_module(), make_weight(), nullptr);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
  EXPECT_EQ(result.error().exit_code(), ExitCode::kPlugin);
  EXPECT_THAT(result.error().to_string(), HasSubstr("unknown exception"));
}

TEST(ResultValidation, ExceptionInCreateBecomesInternalWithItsText) {
  Host host(isolated_options({fixture_dir("qf_fault_throws")}));
  auto result = host.create_quantizer("fault_throws", "fault_rtn", {{"fault", "throw_in_create"}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
  EXPECT_EQ(result.error().exit_code(), ExitCode::kPlugin);
  EXPECT_THAT(result.error().to_string(),
              HasSubstr("fault_throws: deliberate std::runtime_error in create"));
}

TEST(ResultValidation, ExceptionInValidateEnvironmentBecomesInternalWithItsText) {
  Host host(isolated_options({fixture_dir("qf_fault_throws")}));
  auto quantizer = create(host, "fault_throws", {{"fault", "throw_in_validate"}});
  ASSERT_NE(quantizer, nullptr);
  Status status =
      quantizer->validate_environment(host.environment().to_json(), {{"device", "cpu"}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kInternal);
  EXPECT_THAT(status.error().to_string(),
              HasSubstr("deliberate std::runtime_error in validate_environment"));
}

TEST(ResultValidation, HostKeepsServingAfterAPluginThrew) {
  Host host(isolated_options({fixture_dir("qf_fault_throws"), fixture_dir("qf_fault_ok")}));
  auto throwing = create(host, "fault_throws", nlohmann::json::object());
  ASSERT_NE(throwing, nullptr);
  const Tensor weight = make_weight();
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(throwing->quantize(linear_module(), weight, nullptr).ok());
  }
  auto healthy = create(host, "fault_ok", nlohmann::json::object());
  ASSERT_NE(healthy, nullptr);
  auto outputs = healthy->quantize(linear_module(), weight, nullptr);
  ASSERT_TRUE(outputs.ok()) << outputs.error().to_string();
  expect_correct_quantization(outputs.value(), weight);
}

TEST(ResultValidation, UnknownFaultInConfigIsRejectedByCreateAsBadInput) {
  // The fixture validates its own config like a real plugin: INVALID_ARGUMENT -> exit code 4.
  Host host(isolated_options({fixture_dir("qf_fault_garbage")}));
  auto result = host.create_quantizer("fault_garbage", "fault_rtn", {{"fault", "no_such_fault"}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.error().exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(result.error().to_string(), HasSubstr("no_such_fault"));
}

// ------------------------------------------------------------------ PL9 stdout

// The host library does not redirect stdout (the CLI does, and its integration test checks
// stdout purity); here the host must survive a printing plugin and get correct results.
TEST(ResultValidation, PluginWritingToStdoutStillQuantizesCorrectly) {
  Host host(isolated_options({fixture_dir("qf_fault_stdout")}));
  const Tensor weight = make_weight();
  ::testing::internal::CaptureStdout();
  auto quantizer = host.create_quantizer("fault_stdout", "fault_rtn", nlohmann::json::object());
  Result<std::vector<NamedTensor>> outputs =
      quantizer.ok() ? quantizer.value()->quantize(linear_module(), weight, nullptr)
                     : Result<std::vector<NamedTensor>>(quantizer.error());
  const std::string printed = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(outputs.ok()) << outputs.error().to_string();
  expect_correct_quantization(outputs.value(), weight);
  // The fixture really prints, so the CLI's stdout-purity test exercises something.
  EXPECT_THAT(printed, HasSubstr("fault_stdout: printf from quantize"));
  EXPECT_THAT(printed, HasSubstr("fault_stdout: std::cout from quantize"));
}

}  // namespace
}  // namespace qforge
