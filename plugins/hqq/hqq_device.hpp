// The GPU side of the hqq compute hooks: when a call's device is not the CPU (or pinned host
// memory), HqqQuantizer's dequantize / linear_forward hand it here, which checks the tensors,
// allocates the outputs on the call's device and runs the kernels of cuda/ on the host's stream.
// Served: axis-1 layers packed 4bit_u8 or 2bit_u8 (nbits 4, 2, 1.58); other layouts and
// quantize on a device are UNIMPLEMENTED with the way round; a plugin built without nvcc
// answers FAILED_PRECONDITION.
//
// Stream rules (qf_plugin.h: never synchronise, never allocate device memory): dequantize and
// linear_forward never synchronise, except once to read the few meta fields (shape, nbits,
// group_size, axis, packing, view_as_float) when the host keeps them in device memory: they
// decide the geometry before any kernel can run. A host that passes them in host memory
// (kDLCPU / kDLCUDAHost) avoids that wait.
#pragma once

#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::hqq {

// True when the call runs on a GPU device (its device type is not CPU or pinned host memory).
bool is_device_call(const sdk::Call& call);
// Whether this build holds GPU kernels: "CUDA" or "none".
const char* gpu_backend() noexcept;

void device_quantize_hqq(const sdk::Call& call, const qf_module_info& module);
void device_dequantize_hqq(const sdk::Call& call, const qf_module_info& module,
                           const qf_tensor_list& tensors, sdk::TensorSink& out);
void device_linear_forward_hqq(const sdk::Call& call, const qf_module_info& module,
                               const qf_tensor_list& tensors, const DLTensor& x,
                               const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::hqq
