// The GPTQ tensor set of one Linear (FORMATS.md §2.4), I = in_features, O = out_features,
// G = ceil(I / group_size): qweight I32 [I*bits/32, O], qzeros I32 [G, O*bits/32], scales F16
// [G, O], g_idx I32 [I]. The shape arithmetic and the checks live here so quantize, describe,
// check_quantized, dequantize and forward agree on them.
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gptq_config.hpp"

namespace qforge::plugins::gptq {

struct Shapes {
  int64_t in = 0, out = 0;
  int bits = 4;
  int64_t group_size = 0;  // effective: I for group_size -1
  int64_t groups = 0;
  int64_t qweight_rows() const noexcept { return in * bits / 32; }
  int64_t qzeros_cols() const noexcept { return out * bits / 32; }
};

Shapes make_shapes(const GptqConfig& config, int64_t in, int64_t out);

// Why a layer of this size cannot be written as a GPTQ checkpoint with this config, or "" when
// it can: in_features must fill whole qweight words, out_features whole qzeros words, and (for
// quantizing) in_features must split into whole groups as the issue requires.
std::string packing_problem(const GptqConfig& config, int64_t in, int64_t out);

// The unpacked content of a GPTQ Linear. codes [I, O] (input-major, as qweight runs), zeros and
// scales [G, O] (true zero points, scales as stored, widened to float32), g_idx [I].
struct Unpacked {
  Shapes shapes;
  std::vector<uint8_t> codes;
  std::vector<int32_t> zeros;
  std::vector<float> scales;
  std::vector<int32_t> g_idx;
};

// {"tensors":[...]} for describe_quantized.
std::string describe_json(const GptqConfig& config, const qf_module_info& module);

// Checks a pre-quantized module's tensors: presence, dtypes, shapes (each with its own message:
// a wrong qweight row count names the bits it implies) and, when g_idx has data, its range.
void check_tensors(const GptqConfig& config, const qf_module_info& module,
                   const qf_tensor_list& tensors);

// check_tensors, then the qweight / qzeros words as stored (host, contiguous), g_idx and scales.
// qweight is read in place (the largest tensor: copying it per call cost as much as reading it),
// so a PackedView is valid only while the tensor list it was read from is.
struct PackedView {
  Shapes shapes;
  const int32_t* qweight = nullptr;  // [I*bits/32, O], the tensor's own words
  std::vector<int32_t> zeros;        // unpacked true zero points [G, O]
  std::vector<float> scales;         // [G, O]
  std::vector<int32_t> g_idx;        // [I]
};
PackedView read_packed(const GptqConfig& config, const qf_module_info& module,
                       const qf_tensor_list& tensors);

Unpacked unpack(const PackedView& packed);

std::string module_name(const qf_module_info& module);

}  // namespace qforge::plugins::gptq
