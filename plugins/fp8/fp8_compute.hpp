// Fine-grained FP8 quantize, dequantize and the CPU linear forward. The forward is emulation:
// the weight is dequantized to float32 and activations go through the same per-token-group e4m3
// round trip the GPU path applies, then an fp32 GEMM; no FP8 arithmetic unit is used.
#pragma once

#include <qforge/qf_plugin.hpp>

#include "fp8_config.hpp"

namespace qforge::plugins::fp8 {

void quantize_fp8(const sdk::Call& call, const Fp8Config& config, const qf_module_info& module,
                  const DLTensor& weight, sdk::TensorSink& out);

// Writes "weight" in the module's weight dtype (F32/F16/BF16; F32 for anything else).
void dequantize_fp8(const sdk::Call& call, const Fp8Config& config, const qf_module_info& module,
                    const qf_tensor_list& tensors, sdk::TensorSink& out);

void linear_forward_fp8(const sdk::Call& call, const Fp8Config& config,
                        const qf_module_info& module, const qf_tensor_list& tensors,
                        const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::fp8
