// The AWQ tensor set of one Linear (FORMATS.md §2.5, Note [AWQ pack order]), I = in_features,
// O = out_features, g = group_size (I for -1), G = I / g:
//   GEMM: qweight I32 [I, O/8], qzeros I32 [G, O/8], scales F16 [G, O]
//   GEMV: qweight I32 [O, I/8], qzeros I32 [O, W], scales F16 [O, 8W], W = gemv_zeros_width(I, g)
// The shape arithmetic and the checks live here so quantize, describe, check_quantized,
// dequantize and forward agree on them.
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <string>
#include <vector>

#include "awq_config.hpp"

namespace qforge::plugins::awq {

struct Shapes {
  int64_t in = 0, out = 0;
  int64_t group_size = 0;  // effective: I for group_size -1
  int64_t groups = 0;
  AwqVersion version = AwqVersion::kGemm;
  int64_t zeros_width = 0;  // GEMV only: qzeros columns (0 when g has none)

  std::vector<int64_t> qweight_shape() const;
  std::vector<int64_t> qzeros_shape() const;
  std::vector<int64_t> scales_shape() const;
};

Shapes make_shapes(const AwqConfig& config, int64_t in, int64_t out);

// Why a layer of this size cannot be stored as AWQ with this config, or "" when it can.
std::string packing_problem(const AwqConfig& config, int64_t in, int64_t out);

// The content of an AWQ Linear in one layout-free form: codes [I, O] (input-major), zero points
// [G, O] (each in [0, 15]) and scales [G, O] (as stored, widened to float32).
struct Layer {
  Shapes shapes;
  std::vector<uint8_t> codes;
  std::vector<uint8_t> zeros;
  std::vector<float> scales;
};

// {"tensors":[...]} for describe_quantized.
std::string describe_json(const AwqConfig& config, const qf_module_info& module);

// Checks a pre-quantized module's tensors: presence, dtypes and shapes, each mistake with its own
// message (a qweight in the other version's layout, a qzeros / scales group count that implies
// another group_size).
void check_tensors(const AwqConfig& config, const qf_module_info& module,
                   const qf_tensor_list& tensors);

// check_tensors, then what the CPU kernels read: qweight as GEMM words (GEMM: the tensor's own
// buffer, valid while the tensor list is; GEMV: repacked into `owned`), zero points and scales
// as [G, O].
struct PackedView {
  Shapes shapes;
  const int32_t* qweight = nullptr;  // GEMM words [I, O/8]
  std::vector<int32_t> owned;        // GEMV checkpoints: the repacked words
  std::vector<int32_t> zeros;        // [G, O]
  std::vector<float> scales;         // [G, O]
};
PackedView read_packed(const AwqConfig& config, const qf_module_info& module,
                       const qf_tensor_list& tensors);

Layer unpack(const PackedView& packed);

std::string module_name(const qf_module_info& module);

}  // namespace qforge::plugins::awq
