// HQQ quantize, dequantize and the CPU linear forward (x @ dequantize().T + bias, hqq's
// PyTorch backend) for one module.
#pragma once

#include <qforge/qf_plugin.hpp>
#include <vector>

#include "hqq_config.hpp"
#include "hqq_layout.hpp"

namespace qforge::plugins::hqq {

void quantize_hqq(const sdk::Call& call, const WeightQuantParams& params,
                  const qf_module_info& module, const DLTensor& weight, sdk::TensorSink& out);

// The dense weight [out, in] as float32 values of the compute dtype (the scale's dtype): hqq's
// (W_q - zero) * scale with each op rounded to that dtype, as PyTorch does.
std::vector<float> dense_weight(const sdk::Call& call, const qf_module_info& module,
                                const qf_tensor_list& tensors, Geometry* geometry = nullptr);

// Writes "weight" in the module's weight dtype (F32/F16/BF16; F32 for anything else).
void dequantize_hqq(const sdk::Call& call, const qf_module_info& module,
                    const qf_tensor_list& tensors, sdk::TensorSink& out);

// Below this many tokens the forward decodes weight rows group by group as it multiplies (no
// dense layer); from it on, it dequantizes the layer once and runs the blocked GEMM.
inline constexpr int64_t kFusedForwardTokens = 8;

void linear_forward_hqq(const sdk::Call& call, const qf_module_info& module,
                        const qf_tensor_list& tensors, const DLTensor& x, const DLTensor* bias,
                        DLTensor& y);

}  // namespace qforge::plugins::hqq
