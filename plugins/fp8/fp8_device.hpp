// The GPU side of the fp8 and fbgemm_fp8 compute hooks: when a call's device is not the CPU,
// the quantizers' quantize / dequantize / linear_forward hand it here, which checks the tensors,
// allocates the outputs on the call's device and runs the kernels of cuda/ on the host's stream.
// A plugin built without nvcc answers FAILED_PRECONDITION.
//
// Stream rules (qf_plugin.h: never synchronise, never allocate device memory):
//  - dequantize and linear_forward never synchronise and read no tensor on the host.
//  - quantize synchronises once: it reads the per-tile (per-row) maxima back, to refuse a
//    NaN/Inf weight by name as the CPU path does and to compute every scale with the CPU's own
//    arithmetic (448 / amax, the FLT_MAX clamp, ue8m0's power of two, FBGEMM's clamp), so the
//    stored scales and codes are the CPU's bit for bit.
//  - No device scratch: the maxima, then the quantize multipliers, are parked in the
//    weight_scale_inv (weight_scale) output buffer, which the stored inverses overwrite last.
//
// linear_forward picks, per call, the native FP8 tensor-core kernel (from transformers' floor:
// compute capability 8.9 for fp8, 9.0 for fbgemm_fp8; shapes it takes) or the reference kernel,
// which emulates the CPU's arithmetic on any GPU. The environment variable
// QFORGE_FP8_CUDA_PATH=native|emulation forces one (tests/gpu compares them; native runs from
// 8.9 for both methods); native where it cannot run is FAILED_PRECONDITION.
#pragma once

#include <qforge/qf_plugin.hpp>
#include <string>

#include "fbgemm_config.hpp"
#include "fp8_config.hpp"

namespace qforge::plugins::fp8 {

// True when the call runs on a GPU device (its device type is not CPU or pinned host memory).
bool is_device_call(const sdk::Call& call);
// Whether this build holds GPU kernels: "CUDA" or "none".
const char* gpu_backend() noexcept;

void device_quantize_fp8(const sdk::Call& call, const Fp8Config& config,
                         const qf_module_info& module, const DLTensor& weight,
                         sdk::TensorSink& out);
void device_dequantize_fp8(const sdk::Call& call, const Fp8Config& config,
                           const qf_module_info& module, const qf_tensor_list& tensors,
                           sdk::TensorSink& out);
void device_linear_forward_fp8(const sdk::Call& call, const Fp8Config& config,
                               const qf_module_info& module, const qf_tensor_list& tensors,
                               const DLTensor& x, const DLTensor* bias, DLTensor& y);

void device_quantize_fbgemm(const sdk::Call& call, const qf_module_info& module,
                            const DLTensor& weight, sdk::TensorSink& out);
void device_dequantize_fbgemm(const sdk::Call& call, const qf_module_info& module,
                              const qf_tensor_list& tensors, sdk::TensorSink& out);
void device_linear_forward_fbgemm(const sdk::Call& call, const FbgemmFp8Config& config,
                                  const qf_module_info& module, const qf_tensor_list& tensors,
                                  const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::fp8
