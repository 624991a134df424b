// GPU dispatch of the gptq hooks (plugins/gptq/gptq_device.cpp) on any machine: which calls take
// the device path, that a call the build or the machine cannot serve fails with
// FAILED_PRECONDITION naming the device before a tensor is read (every data pointer here is NULL
// or host memory the kernels must never see), and what validate_environment accepts for a GPU.
// The kernels themselves are checked on a GPU by tests/gpu (gptq_checks.cpp).
#include "gptq_device.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "gptq_quantizer.hpp"
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::gptq {
namespace {

qf_call_ctx call_on(int32_t device_type, int32_t device_id) {
  qf_call_ctx c{};
  c.struct_size = sizeof(qf_call_ctx);
  c.abi_version = QF_ABI_VERSION;
  c.device.device_type = static_cast<DLDeviceType>(device_type);
  c.device.device_id = device_id;
  return c;
}

qf_module_info linear_module(int64_t out, int64_t in) {
  qf_module_info m{};
  m.struct_size = sizeof(qf_module_info);
  m.abi_version = QF_ABI_VERSION;
  m.name = "model.layers.0.mlp.up_proj";
  m.kind = QF_MODULE_LINEAR;
  m.in_features = in;
  m.out_features = out;
  m.weight_dtype = sdk::make_dtype(kDLBfloat, 16);
  return m;
}

struct Thrown {
  int32_t code = QF_CODE_OK;
  std::string text;
};

Thrown thrown_by(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const sdk::Error& e) {
    return {e.code(), std::string(e.what()) + " | " + e.why() + " | " + e.fix()};
  }
  return {};
}

class GptqDevice : public ::testing::Test {
 protected:
  void SetUp() override { sdk::g_host = host_.api(); }
  test::TestHost host_;
  sdk::TensorSink sink_{nullptr};
};

TEST_F(GptqDevice, OnlyDeviceMemoryCallsTakeTheGpuPath) {
  const qf_call_ctx cpu = call_on(kDLCPU, 0), pinned = call_on(kDLCUDAHost, 0),
                    cuda = call_on(kDLCUDA, 0), rocm = call_on(kDLROCM, 0);
  EXPECT_FALSE(is_device_call(sdk::Call(&cpu)));
  EXPECT_FALSE(is_device_call(sdk::Call(&pinned)));
  EXPECT_FALSE(is_device_call(sdk::Call(nullptr)));  // no context: the CPU
  EXPECT_TRUE(is_device_call(sdk::Call(&cuda)));
  EXPECT_TRUE(is_device_call(sdk::Call(&rocm)));
}

TEST_F(GptqDevice, BackendMatchesTheBuild) {
#if QFORGE_GPTQ_GPU
  EXPECT_STREQ(gpu_backend(), "CUDA");
#else
  EXPECT_STREQ(gpu_backend(), "none");
#endif
}

// A device type no build serves (Vulkan) and a CUDA device no machine has: every hook, called
// through the quantizer (so the dispatch line is what routes it), must answer
// FAILED_PRECONDITION naming the device. The CPU path would answer otherwise (INVALID_ARGUMENT
// for the empty tensor list, or a quantize of a NULL weight), so this fails if a hook forgets to
// dispatch.
TEST_F(GptqDevice, UnservableDeviceIsFailedPrecondition) {
  GptqQuantizer q(R"({"bits": 4, "group_size": 64})");
  const qf_module_info module = linear_module(128, 128);
  int64_t shape[2] = {128, 128};
  DLTensor weight{};
  weight.device.device_type = kDLCUDA;
  weight.device.device_id = 1000;
  weight.ndim = 2;
  weight.shape = shape;
  weight.dtype = sdk::make_dtype(kDLBfloat, 16);
  const qf_tensor_list empty{sizeof(qf_tensor_list), QF_ABI_VERSION, 0, nullptr};
  for (const qf_call_ctx& ctx : {call_on(kDLVulkan, 0), call_on(kDLCUDA, 1000)}) {
    const sdk::Call call(&ctx);
    const std::string device = ctx.device.device_type == kDLCUDA ? "cuda:1000" : ":0";
    const std::vector<std::function<void()>> hooks = {
        [&] { q.quantize(call, module, weight, nullptr, nullptr, sink_); },
        [&] { q.dequantize(call, module, empty, sink_); },
        [&] {
          DLTensor x = weight, y = weight;
          q.linear_forward(call, module, empty, x, nullptr, y);
        }};
    for (size_t h = 0; h < hooks.size(); ++h) {
      const Thrown e = thrown_by(hooks[h]);
      EXPECT_EQ(e.code, QF_CODE_FAILED_PRECONDITION) << "hook " << h << ": " << e.text;
      EXPECT_NE(e.text.find(device), std::string::npos) << "hook " << h << ": " << e.text;
    }
  }
}

// Without GPU kernels the message names the build option; with them, a CUDA device that does
// not exist is named as such, never a crash.
TEST_F(GptqDevice, RefusalSaysWhyAndHowToFix) {
  GptqQuantizer q(R"({"bits": 4, "group_size": 64})");
  const qf_module_info module = linear_module(128, 128);
  const qf_tensor_list empty{sizeof(qf_tensor_list), QF_ABI_VERSION, 0, nullptr};
  const qf_call_ctx ctx = call_on(kDLCUDA, 1000);
  const Thrown e = thrown_by([&] { q.dequantize(sdk::Call(&ctx), module, empty, sink_); });
  ASSERT_EQ(e.code, QF_CODE_FAILED_PRECONDITION) << e.text;
#if QFORGE_GPTQ_GPU
  EXPECT_NE(e.text.find("cannot use cuda:1000"), std::string::npos) << e.text;
#else
  EXPECT_NE(e.text.find("compiled without nvcc"), std::string::npos) << e.text;
#endif
}

// A GPU request: loading a checkpoint is served where the build has kernels; quantizing (the
// algorithm runs on the CPU) is refused with the way round either way.
TEST_F(GptqDevice, GpuRequestAcceptedForLoadingOnly) {
  GptqQuantizer q(R"({"bits": 4, "group_size": 64})");
  const Thrown quantizing = thrown_by(
      [&] { q.validate_environment("{}", R"({"pre_quantized": false, "device": "cuda:0"})"); });
  EXPECT_EQ(quantizing.code, QF_CODE_FAILED_PRECONDITION) << quantizing.text;
  EXPECT_NE(quantizing.text.find("--device cpu"), std::string::npos) << quantizing.text;
  const Thrown loading = thrown_by(
      [&] { q.validate_environment("{}", R"({"pre_quantized": true, "device": "cuda:0"})"); });
#if QFORGE_GPTQ_GPU
  EXPECT_EQ(loading.code, QF_CODE_OK) << loading.text;
#else
  EXPECT_EQ(loading.code, QF_CODE_FAILED_PRECONDITION) << loading.text;
  EXPECT_NE(loading.text.find("without nvcc"), std::string::npos) << loading.text;
#endif
  const Thrown cpu = thrown_by(
      [&] { q.validate_environment("{}", R"({"pre_quantized": false, "device": "cpu"})"); });
  EXPECT_EQ(cpu.code, QF_CODE_OK) << cpu.text;
}

}  // namespace
}  // namespace qforge::plugins::gptq
