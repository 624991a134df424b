// GPTQ tensors on the CPU: writing an unpacked layer as AutoGPTQ's tensor set, quantizing (the
// GPTQ algorithm on a Hessian, or data-free round-to-nearest), dequantize and the linear forward
// (dequantize by blocks of inputs + float32 accumulation, cpu/kernels.hpp).
#pragma once

#include <qforge/qf_plugin.hpp>
#include <vector>

#include "gptq_config.hpp"
#include "gptq_layout.hpp"

namespace qforge::plugins::gptq {

// Packs `layer` into qweight / qzeros / scales (F16) / g_idx in `out`. Throws INVALID_ARGUMENT
// when the shapes do not pack (packing_problem) or a zero point cannot be stored in the format.
void write_checkpoint(const Unpacked& layer, const GptqConfig& config, sdk::TensorSink& out);

// RTN quantize of one Linear (gptq_rtn.hpp), written with write_checkpoint. Returns the number of
// v1 groups whose zero point 0 had to become 1 (gptq_rtn.hpp).
int64_t quantize_rtn_module(const GptqConfig& config, const qf_module_info& module,
                            const DLTensor& weight, sdk::TensorSink& out);

// The host's calibration contract for GPTQ: a tensor of this name in `calibration`, F32 or F64,
// [in_features, in_features], in host memory, holding H = 2/N·Σ x xᵀ over the layer's inputs.
inline constexpr const char* kHessianName = "hessian";

// What quantize_gptq_module did, for the log.
struct GptqReport {
  int64_t dead_columns = 0;
  int64_t zero_clamped = 0;
  double damp = 0.0;
};

// Checks `hessian` (dtype, shape [I, I], host memory, contiguous) and returns it as float64;
// quantize_gptq checks that it is finite. Throws INVALID_ARGUMENT naming the module and what was
// expected.
std::vector<double> read_hessian(const qf_module_info& module, const DLTensor& hessian);

// The GPTQ algorithm (gptq_algorithm.hpp) on one Linear with its Hessian, written with
// write_checkpoint.
GptqReport quantize_gptq_module(const sdk::Call& call, const GptqConfig& config,
                                const qf_module_info& module, const DLTensor& weight,
                                const DLTensor& hessian, sdk::TensorSink& out);

// Writes "weight" [O, I] in the module's weight dtype (F32/F16/BF16; F32 for anything else).
void dequantize_gptq(const sdk::Call& call, const GptqConfig& config, const qf_module_info& module,
                     const qf_tensor_list& tensors, sdk::TensorSink& out);

void linear_forward_gptq(const sdk::Call& call, const GptqConfig& config,
                         const qf_module_info& module, const qf_tensor_list& tensors,
                         const DLTensor& x, const DLTensor* bias, DLTensor& y);

}  // namespace qforge::plugins::gptq
