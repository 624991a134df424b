// The GPU side of the bnb compute hooks: when a call's device is CUDA (or ROCm in a HIP
// build), BnbQuantizer's quantize / dequantize / linear_forward hand the call here, which checks
// the tensors, allocates the outputs on the call's device and runs the kernels of cuda/ on the
// host's stream. A plugin built without a GPU compiler answers FAILED_PRECONDITION.
//
// Stream rules (qf_plugin.h: never synchronise, never allocate device memory), and where this
// file departs from the first one:
//  - dequantize and linear_forward never synchronise, except to read the ~200-byte quant_state
//    blob of a 4-bit module when the host keeps it in device memory (the blob's JSON decides the
//    shapes and the double-quant offset before any kernel can run). A host that passes the
//    blob in host memory (kDLCPU / kDLCUDAHost) avoids that wait.
//  - quantize synchronises once at its end: it must report a NaN/Inf weight as an error, and
//    with double quantization the offset (mean of all absmax) goes into the blob's text. It
//    computes the 8-bit second level of double quantization on the host with the CPU code, so
//    that level is the CPU's bit for bit.
//  - No device scratch is allocated: double quantization parks the float absmax in the packed
//    weight's output buffer (or, for a weight of fewer than 7 elements, in quant_map's) before
//    the codes overwrite it.
#pragma once

#include <qforge/qf_plugin.hpp>

#include "bnb_config.hpp"

namespace qforge::plugins::bnb {

// True when the call runs on a GPU device (its device type is not CPU).
bool is_device_call(const sdk::Call& call);
// Whether this build holds GPU kernels, and which API ("CUDA", "HIP", or "none").
const char* gpu_backend() noexcept;

void device_quantize(const sdk::Call& call, const BnbConfig& config, BnbBits bits,
                     const qf_module_info& module, const DLTensor& weight, sdk::TensorSink& out);
void device_dequantize(const sdk::Call& call, const BnbConfig& config, BnbBits bits,
                       const qf_module_info& module, const qf_tensor_list& tensors,
                       sdk::TensorSink& out);
void device_linear_forward(const sdk::Call& call, const BnbConfig& config, BnbBits bits,
                           const qf_module_info& module, const qf_tensor_list& tensors,
                           const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::bnb
