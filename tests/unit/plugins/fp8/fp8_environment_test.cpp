// The FP8 methods' validate_environment: transformers' compute-capability and device_map rules,
// and qforge's one difference, emulation only when the user asks for it (issue 6 item 4).
#include "fp8_environment.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "fbgemm_quantizer.hpp"
#include "fp8_quantizer.hpp"

namespace qforge::plugins::fp8 {
namespace {

using nlohmann::json;

json cuda(int index, const std::string& name, const std::string& cc) {
  return {{"backend", "cuda"}, {"index", index}, {"name", name}, {"compute_capability", cc}};
}

std::string env_with(const json& devices) {
  return json{{"devices", devices}, {"cuda", {{"status", "ok"}}}}.dump();
}

std::string no_gpu() {
  return json{{"devices", json::array()},
              {"cuda", {{"status", "libcuda.so.1 not found: no such file"}}}}
      .dump();
}

std::string request(const json& device, bool allow_emulation = false, bool pre_quantized = false,
                    const json& device_map = nullptr) {
  return json{{"device", device},
              {"pre_quantized", pre_quantized},
              {"dtype", nullptr},
              {"device_map", device_map},
              {"allow_emulation", allow_emulation}}
      .dump();
}

template <typename Fn>
sdk::Error expect_error(Fn&& fn, int32_t code) {
  try {
    fn();
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), code) << "what: " << e.what() << "\nwhy: " << e.why();
    return e;
  }
  ADD_FAILURE() << "expected an sdk::Error with code " << code << ", nothing was thrown";
  return sdk::Error(QF_CODE_OK, "", "", "");
}

Fp8Rules fp8_rules(bool cuda_built, bool dequantize = false) {
  return Fp8Rules{"fp8", 8, 9, dequantize, cuda_built};
}

Fp8Decision decide(const Fp8Rules& rules, const std::string& env, const std::string& req) {
  return check_fp8_environment(rules, parse_environment(env), parse_request(req));
}

TEST(Fp8Environment, CpuIsRefusedUnlessEmulationIsAllowed) {
  const auto e = expect_error([] { decide(fp8_rules(false), no_gpu(), request("cpu")); },
                              QF_CODE_FAILED_PRECONDITION);
  // transformers' text for quantizing without a GPU, and the way out.
  EXPECT_EQ(std::string(e.what()),
            "No GPU or XPU found. A GPU or XPU is needed for FP8 quantization.");
  EXPECT_NE(e.why().find("emulation"), std::string::npos) << e.why();
  EXPECT_NE(e.fix().find("--allow-emulation"), std::string::npos) << e.fix();
  EXPECT_NE(e.fix().find("dequantize: true"), std::string::npos) << e.fix();

  const Fp8Decision d = decide(fp8_rules(false), no_gpu(), request("cpu", true));
  EXPECT_TRUE(d.emulated);
  EXPECT_EQ(d.device, "cpu");
  EXPECT_EQ(d.allowed_by, "--allow-emulation");
  EXPECT_NE(describe(d, fp8_rules(false)).find("emulation on cpu"), std::string::npos);
}

TEST(Fp8Environment, DequantizeTrueAllowsEmulationForFp8) {
  const Fp8Decision d = decide(fp8_rules(false, true), no_gpu(), request("cpu"));
  EXPECT_TRUE(d.emulated);
  EXPECT_EQ(d.allowed_by, "dequantize: true");
}

TEST(Fp8Environment, PreQuantizedLoadOnCpuNamesTheLoadCase) {
  const auto e =
      expect_error([] { decide(fp8_rules(false), no_gpu(), request("cpu", false, true)); },
                   QF_CODE_FAILED_PRECONDITION);
  EXPECT_EQ(std::string(e.what()), "Using FP8 quantized models requires a GPU or XPU");
}

TEST(Fp8Environment, ComputeCapabilityBelowTheMinimumNeedsEmulation) {
  const std::string a100 = env_with(json::array({cuda(0, "NVIDIA A100", "8.0")}));
  const auto e = expect_error([&] { decide(fp8_rules(true), a100, request("cuda:0")); },
                              QF_CODE_FAILED_PRECONDITION);
  EXPECT_NE(std::string(e.what()).find("compute capability >= 8.9"), std::string::npos);
  EXPECT_NE(std::string(e.what()).find("actual = `8.0`"), std::string::npos) << e.what();
  const Fp8Decision d = decide(fp8_rules(true), a100, request("cuda:0", true));
  EXPECT_TRUE(d.emulated);
  EXPECT_EQ(d.device, "cuda:0");
  EXPECT_NE(d.why.find("8.0"), std::string::npos);
}

TEST(Fp8Environment, Ada89IsNativeForFp8ButNotForFbgemm) {
  const std::string l4 = env_with(json::array({cuda(0, "NVIDIA L4", "8.9")}));
  const Fp8Decision d = decide(fp8_rules(true), l4, request("cuda:0"));
  EXPECT_FALSE(d.emulated);
  EXPECT_EQ(describe(d, fp8_rules(true)), "fp8: native FP8 on cuda:0");
  const Fp8Rules fbgemm{"fbgemm_fp8", 9, 0, false, true};
  const auto e =
      expect_error([&] { decide(fbgemm, l4, request("cuda:0")); }, QF_CODE_FAILED_PRECONDITION);
  EXPECT_NE(std::string(e.what()).find(">= 9.0"), std::string::npos) << e.what();
  // fbgemm_fp8 has no dequantize key: only the flag allows emulation, and the fix says so.
  EXPECT_EQ(e.fix().find("dequantize"), std::string::npos) << e.fix();
  const std::string h100 = env_with(json::array({cuda(0, "NVIDIA H100", "9.0")}));
  EXPECT_FALSE(decide(fbgemm, h100, request("cuda")).emulated);
}

TEST(Fp8Environment, BuildWithoutCudaKernelsRefusesAGpuEvenWithEmulation) {
  const std::string h100 = env_with(json::array({cuda(0, "NVIDIA H100", "9.0")}));
  const auto e = expect_error([&] { decide(fp8_rules(false), h100, request("cuda:0", true)); },
                              QF_CODE_FAILED_PRECONDITION);
  EXPECT_NE(std::string(e.what()).find("no CUDA kernels"), std::string::npos) << e.what();
  EXPECT_NE(e.fix().find("nvcc"), std::string::npos) << e.fix();
}

TEST(Fp8Environment, MissingGpuAndRocmAreRefusedWithWhatExists) {
  const std::string h100 = env_with(json::array({cuda(0, "NVIDIA H100", "9.0")}));
  const auto e = expect_error([&] { decide(fp8_rules(true), h100, request("cuda:3", true)); },
                              QF_CODE_FAILED_PRECONDITION);
  EXPECT_NE(e.fix().find("cuda:0 (NVIDIA H100)"), std::string::npos) << e.fix();
  const std::string mi300 =
      env_with(json::array({json{{"backend", "rocm"}, {"index", 0}, {"name", "MI300X"}}}));
  expect_error([&] { decide(fp8_rules(true), mi300, request("rocm:0", true)); },
               QF_CODE_FAILED_PRECONDITION);
}

TEST(Fp8Environment, NoDeviceDefaultsToTheFirstGpuElseTheCpu) {
  const std::string h100 = env_with(json::array({cuda(0, "NVIDIA H100", "9.0")}));
  EXPECT_EQ(decide(fp8_rules(true), h100, json::object().dump()).device, "cuda:0");
  expect_error([] { decide(fp8_rules(true), no_gpu(), json::object().dump()); },
               QF_CODE_FAILED_PRECONDITION);
}

TEST(Fp8Environment, DeviceMapMixingGpuAndCpuIsRefusedWhenQuantizing) {
  const std::string h100 = env_with(json::array({cuda(0, "NVIDIA H100", "9.0")}));
  const json mixed = {{"model.layers", "cuda:0"}, {"lm_head", "cpu"}};
  const auto e =
      expect_error([&] { decide(fp8_rules(true), h100, request(nullptr, true, false, mixed)); },
                   QF_CODE_INVALID_ARGUMENT);
  EXPECT_NE(std::string(e.what()).find("cpu/disk device"), std::string::npos) << e.what();
  // Loading a pre-quantized checkpoint with the same map is fine (transformers allows it), and
  // its CPU part is emulated, which the flag allows.
  const Fp8Decision d = decide(fp8_rules(true), h100, request(nullptr, true, true, mixed));
  EXPECT_TRUE(d.emulated);
  EXPECT_EQ(d.device, "cpu");
  // An all-CPU map is the CPU: the emulation rule decides.
  expect_error(
      [&] {
        decide(fp8_rules(true), h100, request(nullptr, false, false, {{"", "cpu"}}));
      },
      QF_CODE_FAILED_PRECONDITION);
  expect_error(
      [&] {
        decide(fp8_rules(true), h100, request(nullptr, true, false, {{"", "tpu"}}));
      },
      QF_CODE_INVALID_ARGUMENT);
}

TEST(Fp8Environment, QuantizersReportTheDecisionInTheirKernels) {
  const qf_module_info module = [] {
    qf_module_info m{};
    m.struct_size = sizeof(qf_module_info);
    m.name = "model.layers.0.mlp.up_proj";
    m.kind = QF_MODULE_LINEAR;
    m.in_features = 256;
    m.out_features = 256;
    m.weight_dtype = DLDataType{kDLBfloat, 16, 1};
    return m;
  }();
  Fp8Quantizer fp8(R"({"quant_method": "fp8"})");
  EXPECT_THROW(fp8.validate_environment(no_gpu(), request("cpu")), sdk::Error);
  fp8.validate_environment(no_gpu(), request("cpu", true));
  json kernels = json::parse(fp8.describe_quantized(module))["kernels"];
  EXPECT_NE(kernels["this_run"].get<std::string>().find("emulation on cpu"), std::string::npos)
      << kernels.dump();
  EXPECT_EQ(kernels["cuda"].get<std::string>().find("none") == 0, !kCudaKernelsBuilt)
      << kernels.dump();

  FbgemmFp8Quantizer fbgemm(R"({"quant_method": "fbgemm_fp8"})");
  EXPECT_THROW(fbgemm.validate_environment(no_gpu(), request("cpu")), sdk::Error);
  fbgemm.validate_environment(no_gpu(), request("cpu", true));
  kernels = json::parse(fbgemm.describe_quantized(module))["kernels"];
  EXPECT_NE(kernels["this_run"].get<std::string>().find("fbgemm_fp8: emulation"), std::string::npos)
      << kernels.dump();
}

}  // namespace
}  // namespace qforge::plugins::fp8
