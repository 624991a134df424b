// AWQ tensors on the CPU: writing a Layer as AutoAWQ's GEMM or GEMV tensor set, quantizing
// without calibration (AWQ's pseudo-quantizer, round-to-nearest), dequantize and the linear
// forward (dequantize by blocks of inputs + float32 accumulation, cpu/kernels.hpp).
#pragma once

#include <qforge/qf_plugin.hpp>

#include "awq_config.hpp"
#include "awq_layout.hpp"

namespace qforge::plugins::awq {

// Packs `layer` into qweight / qzeros / scales (F16) in `out`, in the config's version's layout.
void write_checkpoint(const Layer& layer, const AwqConfig& config, sdk::TensorSink& out);

// Round-to-nearest with AWQ's quantizer (awq_rtn.hpp) of one Linear, written with
// write_checkpoint. Throws INVALID_ARGUMENT naming the module when it does not pack.
void quantize_rtn_module(const AwqConfig& config, const qf_module_info& module,
                         const DLTensor& weight, sdk::TensorSink& out);

// Writes "weight" [O, I] in the module's weight dtype (F32/F16/BF16; F32 for anything else).
void dequantize_awq(const sdk::Call& call, const AwqConfig& config, const qf_module_info& module,
                    const qf_tensor_list& tensors, sdk::TensorSink& out);

void linear_forward_awq(const sdk::Call& call, const AwqConfig& config,
                        const qf_module_info& module, const qf_tensor_list& tensors,
                        const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::awq
