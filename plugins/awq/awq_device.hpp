// The GPU side of the awq compute hooks: when a call's device is not the CPU (or pinned host
// memory), AwqQuantizer's dequantize / linear_forward hand it here, which checks the tensors'
// dtypes and shapes (the CPU's check_tensors, which reads no data), allocates the outputs on the
// call's device and runs the kernels of cuda/ on the host's stream. Served: dequantize and
// linear_forward for both checkpoint layouts (GEMM and GEMV, read natively: no repacking) with
// F16 / BF16 / F32 scales, x, bias and y. Quantize on a device is UNIMPLEMENTED with the way
// round; a plugin built without nvcc answers FAILED_PRECONDITION.
//
// Stream rules (qf_plugin.h: never synchronise, never allocate device memory): AWQ has no meta
// tensors, every size comes from the module and the config, so nothing here waits for the
// stream.
#pragma once

#include <qforge/qf_plugin.hpp>

#include "awq_config.hpp"

namespace qforge::plugins::awq {

// True when the call runs on a GPU device (its device type is not CPU or pinned host memory).
bool is_device_call(const sdk::Call& call);
// Whether this build holds GPU kernels: "CUDA" or "none".
const char* gpu_backend() noexcept;

void device_quantize_awq(const sdk::Call& call, const qf_module_info& module);
void device_dequantize_awq(const sdk::Call& call, const AwqConfig& config,
                           const qf_module_info& module, const qf_tensor_list& tensors,
                           sdk::TensorSink& out);
void device_linear_forward_awq(const sdk::Call& call, const AwqConfig& config,
                               const qf_module_info& module, const qf_tensor_list& tensors,
                               const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::awq
