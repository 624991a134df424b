// GPU dispatch of the awq compute hooks (see awq_device.hpp).
#include "awq_device.hpp"

#include <cstdint>
#include <string>

#include "awq_layout.hpp"
#include "dense_tensor_io.hpp"  // plugins/common
#include "device_checks.hpp"    // plugins/common
#include "device_refusal.hpp"   // plugins/common

#if QFORGE_AWQ_GPU
#include "cuda/awq_cuda.hpp"
#endif

namespace qforge::plugins::awq {
namespace {

using sdk::Error;

#if QFORGE_AWQ_GPU
constexpr const char* kBackend = "CUDA";
constexpr bool kCudaBuild = true;
#else
constexpr const char* kBackend = "none";
constexpr bool kCudaBuild = false;
#endif

// The call's device must be one this build's kernels run on.
void require_served(const sdk::Call& call, const qf_module_info& module, const char* hook) {
  require_cuda_served(call, "module '" + module_name(module) + "': awq " + hook, "awq", kCudaBuild);
}

#if QFORGE_AWQ_GPU

void enter_device(const sdk::Call& call, const qf_module_info& module) {
  check_device_entered(gpu::set_device(call.device().device_id), call, module_name(module));
}

gpu::Float gpu_kind(FloatKind k) {
  return k == FloatKind::kF32 ? gpu::Float::kF32
                              : (k == FloatKind::kF16 ? gpu::Float::kF16 : gpu::Float::kBF16);
}

// check_tensors reads dtypes and shapes only, never data, so the CPU's checks and messages
// serve device tensors unchanged.
gpu::Packed packed_of(const sdk::Call& call, const AwqConfig& config, const qf_module_info& module,
                      const qf_tensor_list& tensors) {
  check_tensors(config, module, tensors);
  const Shapes s = make_shapes(config, module.in_features, module.out_features);
  const auto on_device = [&](const char* name) -> const DLTensor& {
    const DLTensor& t = *sdk::find_tensor(&tensors, name);  // check_tensors found it
    require_on_cuda_device(call, t, "module '" + module_name(module) + "': tensor '" + name + "'");
    return t;
  };
  const DLTensor& qweight = on_device("qweight");
  const DLTensor& qzeros = on_device("qzeros");
  const DLTensor& scales = on_device("scales");
  gpu::Packed p;
  p.qweight = reinterpret_cast<const int32_t*>(bytes_of(qweight));
  p.qzeros = reinterpret_cast<const int32_t*>(bytes_of(qzeros));
  p.scales = bytes_of(scales);
  p.scales_kind = gpu_kind(float_kind(scales.dtype, "scales"));
  p.in = s.in;
  p.out = s.out;
  p.group_size = s.group_size;
  p.groups = s.groups;
  p.gemv = s.version == AwqVersion::kGemv;
  p.zeros_width = s.zeros_width;
  return p;
}

#endif  // QFORGE_AWQ_GPU

}  // namespace

bool is_device_call(const sdk::Call& call) {
  const int type = call.device().device_type;
  return type != kDLCPU && type != kDLCUDAHost;
}

const char* gpu_backend() noexcept { return kBackend; }

void device_quantize_awq(const sdk::Call& call, const qf_module_info& module) {
  require_served(call, module, "quantize");
#if QFORGE_AWQ_GPU
  enter_device(call, module);
  throw Error(QF_CODE_UNIMPLEMENTED,
              "module '" + module_name(module) + "': awq quantize on " +
                  device_text(call.device()) + " is not available",
              "AWQ's quantizer runs on the CPU only in this plugin; its CUDA kernels cover "
              "dequantize and linear_forward",
              "quantize with --device cpu; the quantized layers then run on the GPU");
#endif
}

void device_dequantize_awq(const sdk::Call& call, const AwqConfig& config,
                           const qf_module_info& module, const qf_tensor_list& tensors,
                           sdk::TensorSink& out) {
  require_served(call, module, "dequantize");
#if QFORGE_AWQ_GPU
  enter_device(call, module);
  const gpu::Packed w = packed_of(call, config, module, tensors);
  // The CPU path's output: the module's dtype when F32/F16/BF16, else F32; shape [out, in].
  const DLDataType d = module.weight_dtype;
  const bool dense_ok = d.lanes == 1 && ((d.code == kDLFloat && (d.bits == 32 || d.bits == 16)) ||
                                         (d.code == kDLBfloat && d.bits == 16));
  const DLDataType dtype = dense_ok ? d : sdk::make_dtype(kDLFloat, 32);
  DLTensor& dense = out.allocate("weight", dtype, {w.out, w.in}, call.device());
  check_cuda(
      gpu::dequantize(w, gpu_kind(float_kind(dtype, "weight")), bytes_of(dense), call.stream()),
      "awq dequantize");
#else
  (void)config, (void)tensors, (void)out;
#endif
}

void device_linear_forward_awq(const sdk::Call& call, const AwqConfig& config,
                               const qf_module_info& module, const qf_tensor_list& tensors,
                               const DLTensor& x, const DLTensor* bias, DLTensor& y) {
  require_served(call, module, "linear_forward");
#if QFORGE_AWQ_GPU
  enter_device(call, module);
  const std::string name = module_name(module);
  const int64_t in = module.in_features, out_f = module.out_features;
  // The CPU path's order of checks: x's shape first, then the packed tensors.
  if (x.ndim < 1 || x.shape[x.ndim - 1] != in) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + name + "': x's last dimension is not in_features",
                "expected " + std::to_string(in), "pass x of shape [..., in_features]");
  }
  const gpu::Packed w = packed_of(call, config, module, tensors);
  require_on_cuda_device(call, x, "linear_forward input x");
  require_on_cuda_device(call, y, "linear_forward output y");
  const FloatKind xk = float_kind(x.dtype, "x");
  const FloatKind yk = float_kind(y.dtype, "y");
  const int64_t tokens = in > 0 ? sdk::numel(x) / in : 0;
  if (sdk::numel(y) != tokens * out_f) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "y has the wrong size",
                "expected " + std::to_string(tokens * out_f) + " elements",
                "allocate y as [..., out_features]");
  }
  const void* b = nullptr;
  FloatKind bk = FloatKind::kF32;
  if (bias != nullptr) {
    require_on_cuda_device(call, *bias, "linear_forward bias");
    bk = float_kind(bias->dtype, "bias");
    if (sdk::numel(*bias) != out_f) {
      throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + name + "': bias does not fit",
                  "bias has " + std::to_string(sdk::numel(*bias)) + " elements, expected " +
                      std::to_string(out_f),
                  "pass the module's [out_features] bias");
    }
    b = bytes_of(*bias);
  }
  check_cuda(gpu::gemv(w, bytes_of(x), gpu_kind(xk), tokens, b, gpu_kind(bk), bytes_of(y),
                       gpu_kind(yk), call.stream()),
             "awq linear_forward");
#else
  (void)config, (void)tensors, (void)x, (void)bias, (void)y;
#endif
}

}  // namespace qforge::plugins::awq
