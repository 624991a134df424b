// GPU dispatch of the bnb hooks (plugins/bnb/bnb_device.cpp) on any machine: which calls go to
// the device path, and that a call the build or the machine cannot serve fails cleanly with
// FAILED_PRECONDITION before touching a tensor. The kernels themselves are checked on a GPU by
// tests/gpu (docs/gpu.md).
#include "bnb_device.hpp"

#include <gtest/gtest.h>

#include <string>

#include "bnb_quantizer.hpp"
#include "unit/plugins/bnb/bnb_test_util.hpp"

namespace qforge::plugins::bnb {
namespace {

qf_call_ctx call_on(int32_t device_type, int32_t device_id) {
  qf_call_ctx c{};
  c.struct_size = sizeof(qf_call_ctx);
  c.abi_version = QF_ABI_VERSION;
  c.device.device_type = static_cast<DLDeviceType>(device_type);
  c.device.device_id = device_id;
  return c;
}

qf_module_info linear_module() {
  qf_module_info m{};
  m.struct_size = sizeof(qf_module_info);
  m.abi_version = QF_ABI_VERSION;
  m.name = "model.layers.0.mlp.up_proj";
  m.kind = QF_MODULE_LINEAR;
  m.in_features = 64;
  m.out_features = 64;
  m.weight_dtype = sdk::make_dtype(kDLFloat, 32);
  return m;
}

TEST(BnbDevice, OnlyDeviceMemoryCallsTakeTheGpuPath) {
  const qf_call_ctx cpu = call_on(kDLCPU, 0), pinned = call_on(kDLCUDAHost, 0),
                    cuda = call_on(kDLCUDA, 0), rocm = call_on(kDLROCM, 0);
  EXPECT_FALSE(is_device_call(sdk::Call(&cpu)));
  EXPECT_FALSE(is_device_call(sdk::Call(&pinned)));
  EXPECT_FALSE(is_device_call(sdk::Call(nullptr)));  // no context: the CPU
  EXPECT_TRUE(is_device_call(sdk::Call(&cuda)));
  EXPECT_TRUE(is_device_call(sdk::Call(&rocm)));
}

TEST(BnbDevice, BackendMatchesTheBuild) {
  const std::string backend = gpu_backend();
#if QFORGE_BNB_GPU_HIP
  EXPECT_EQ(backend, "HIP");
#elif QFORGE_BNB_GPU
  EXPECT_EQ(backend, "CUDA");
#else
  EXPECT_EQ(backend, "none");
#endif
}

// A device type no build serves (Vulkan), and a CUDA device that exists on no machine: both
// must be refused with FAILED_PRECONDITION naming the device, whatever GPU this machine has,
// and before any tensor is read (the weight's data pointer is NULL here).
TEST(BnbDevice, UnservableDeviceIsFailedPrecondition) {
  for (bool eight_bit : {false, true}) {
    BnbQuantizer q(eight_bit ? test::config_8bit() : test::config_4bit(),
                   eight_bit ? BnbBits::k8 : BnbBits::k4);
    const qf_module_info module = linear_module();
    int64_t shape[2] = {64, 64};
    DLTensor weight{};
    weight.device.device_type = kDLCUDA;
    weight.device.device_id = 1000;
    weight.ndim = 2;
    weight.shape = shape;
    weight.dtype = sdk::make_dtype(kDLFloat, 32);
    sdk::TensorSink sink(nullptr);
    for (const qf_call_ctx& ctx : {call_on(kDLVulkan, 0), call_on(kDLCUDA, 1000)}) {
      const sdk::Call call(&ctx);
      const sdk::Error e =
          test::expect_error([&] { q.quantize(call, module, weight, nullptr, nullptr, sink); },
                             QF_CODE_FAILED_PRECONDITION);
      EXPECT_NE(std::string(e.what()).find(ctx.device.device_type == kDLCUDA ? "cuda:1000" : ":0"),
                std::string::npos)
          << e.what();
      qf_tensor_list empty{sizeof(qf_tensor_list), QF_ABI_VERSION, 0, nullptr};
      test::expect_error([&] { q.dequantize(call, module, empty, sink); },
                         QF_CODE_FAILED_PRECONDITION);
      DLTensor x = weight, y = weight;
      test::expect_error([&] { q.linear_forward(call, module, empty, x, nullptr, y); },
                         QF_CODE_FAILED_PRECONDITION);
    }
  }
}

}  // namespace
}  // namespace qforge::plugins::bnb
