// The bnb compute hooks (quantize, dequantize, linear_forward) over DLTensors, 4-bit in
// bnb_compute.cpp and 8-bit in bnb_compute_8bit.cpp: input checks, the serialized tensor set,
// threading; the math lives in cpu/.
#pragma once

#include <qforge/qf_plugin.hpp>

#include "bnb_config.hpp"

namespace qforge::plugins::bnb {

// Quantizes a [out, in] (Conv1D: [in, out], transposed first) F32/F16/BF16 weight into exactly
// the tensors describe_4bit lists. Throws INVALID_ARGUMENT naming the module, block and element
// for a NaN or Inf in the weight.
void quantize_4bit(const sdk::Call& call, const BnbConfig& config, const qf_module_info& module,
                   const DLTensor& weight, sdk::TensorSink& out);

// Rebuilds "weight" ([out, in]; Conv1D: [in, out]) in module.weight_dtype.
void dequantize_4bit(const sdk::Call& call, const BnbConfig& config, const qf_module_info& module,
                     const qf_tensor_list& tensors, sdk::TensorSink& out);

// y[..., out] = x[..., in] @ W^T (+ bias), computed in float32 without materializing W.
void linear_forward_4bit(const sdk::Call& call, const BnbConfig& config,
                         const qf_module_info& module, const qf_tensor_list& tensors,
                         const DLTensor& x, const DLTensor* bias, DLTensor& y);

// LLM.int8 (bnb_compute_8bit.cpp). Quantizes a [out, in] (Conv1D: [in, out], transposed first)
// F32/F16/BF16 weight into describe_8bit's tensors: cast to float16, row absmax SCB, codes
// round-half-even(w * (127 / SCB)). Throws INVALID_ARGUMENT naming the row and column of a
// NaN, an Inf or a value beyond float16.
void quantize_8bit(const sdk::Call& call, const qf_module_info& module, const DLTensor& weight,
                   sdk::TensorSink& out);

// Rebuilds "weight" = codes * SCB / 127 ([out, in]; Conv1D: [in, out]) in module.weight_dtype.
void dequantize_8bit(const sdk::Call& call, const qf_module_info& module,
                     const qf_tensor_list& tensors, sdk::TensorSink& out);

// y = x @ W^T (+ bias) by LLM.int8's mixed-precision decomposition at config's
// llm_int8_threshold (0: everything through int8).
void linear_forward_8bit(const sdk::Call& call, const BnbConfig& config,
                         const qf_module_info& module, const qf_tensor_list& tensors,
                         const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::bnb
