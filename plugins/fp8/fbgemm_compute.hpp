// FBGEMM per-channel FP8 (quant_method "fbgemm_fp8", FORMATS.md §2.7): `weight` F8_E4M3 [O, I]
// and `weight_scale` F32 [O, 1], one scale per output row. Quantize, the tensor-set description
// and checks, dequantize, and the CPU forward, which emulates f8f8bf16_rowwise: activations
// quantized per row (max |x| capped at activation_scale_ub), an exact sum of e4m3 products
// in fp32, then both row scales applied.
#pragma once

#include <qforge/qf_plugin.hpp>
#include <string>

#include "fbgemm_config.hpp"
#include "fp8_scales.hpp"  // kFbgemmMaxScale

namespace qforge::plugins::fp8 {

std::string describe_fbgemm_json(const qf_module_info& module);
void check_fbgemm_tensors(const qf_module_info& module, const qf_tensor_list& tensors);

void quantize_fbgemm(const sdk::Call& call, const qf_module_info& module, const DLTensor& weight,
                     sdk::TensorSink& out);
void dequantize_fbgemm(const sdk::Call& call, const qf_module_info& module,
                       const qf_tensor_list& tensors, sdk::TensorSink& out);
void linear_forward_fbgemm(const sdk::Call& call, const FbgemmFp8Config& config,
                           const qf_module_info& module, const qf_tensor_list& tensors,
                           const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::fp8
