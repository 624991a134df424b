// The GPU side of the gptq compute hooks: when a call's device is not the CPU (or pinned host
// memory), GptqQuantizer's dequantize / linear_forward hand it here, which checks the tensors'
// dtypes and shapes (the CPU's check_tensors, without reading g_idx's values: they are on the
// device), allocates the outputs on the call's device and runs the kernels of cuda/ on the
// host's stream. Served: dequantize for 2/3/4/8 bits, linear_forward for 4 bits, v1 and v2, any
// g_idx (act-order). Quantize on a device and other linear_forward widths are UNIMPLEMENTED
// with the way round; a plugin built without nvcc answers FAILED_PRECONDITION.
//
// Stream rules (qf_plugin.h: never synchronise, never allocate device memory): GPTQ has no meta
// tensors, every size comes from the module and the config, so nothing here waits for the
// stream.
#pragma once

#include <qforge/qf_plugin.hpp>

#include "gptq_config.hpp"

namespace qforge::plugins::gptq {

// True when the call runs on a GPU device (its device type is not CPU or pinned host memory).
bool is_device_call(const sdk::Call& call);
// Whether this build holds GPU kernels: "CUDA" or "none".
const char* gpu_backend() noexcept;

void device_quantize_gptq(const sdk::Call& call, const qf_module_info& module);
void device_dequantize_gptq(const sdk::Call& call, const GptqConfig& config,
                            const qf_module_info& module, const qf_tensor_list& tensors,
                            sdk::TensorSink& out);
void device_linear_forward_gptq(const sdk::Call& call, const GptqConfig& config,
                                const qf_module_info& module, const qf_tensor_list& tensors,
                                const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::gptq
