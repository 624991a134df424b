// The tensor set of one HQQLinear as hqq's encoded state_dict writes it (FORMATS.md §2.8):
// W_q packed [rows', cols] (U8, or I32 for 3-bit), scale and zero in the compute dtype ([rows, 1]
// for axis 1, [1, cols] for axis 0; scale is the dequant multiplier), and the meta fields
// encoded as tensors (ints I32 [], bools U8 [], strings U8 character codes, shape I64 [2]).
// The group arithmetic lives here so quantize, dequantize and the checks agree on it.
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hqq_bitpack.hpp"
#include "hqq_config.hpp"
#include "hqq_tensor_io.hpp"

namespace qforge::plugins::hqq {

// How a weight [out, in] is grouped. hqq flattens W row-major and reshapes it to
// [numel / g, g] (axis 1: each row of that is a group) or [g, numel / g] (axis 0: each column
// is a group), so a group can span rows of W when g does not divide in_features.
struct Geometry {
  int64_t out_features = 0, in_features = 0;
  int64_t group = 0;  // g
  int axis = 1;
  int64_t rows = 0, cols = 0;  // the reshaped matrix hqq quantizes and packs
  double nbits = 4;
  int max_v = 15;
  std::string packing;
  PackedShape packed;

  int64_t numel() const noexcept { return out_features * in_features; }
  int64_t groups() const noexcept { return axis == 1 ? rows : cols; }
  // Flat index into W of element k (0 <= k < g) of group j.
  int64_t flat_index(int64_t j, int64_t k) const noexcept {
    return axis == 1 ? j * group + k : k * cols + j;
  }
  std::vector<int64_t> wq_shape() const { return {packed.rows, cols}; }
  DLDataType wq_dtype() const;
  std::vector<int64_t> scale_shape() const {
    return axis == 1 ? std::vector<int64_t>{rows, 1} : std::vector<int64_t>{1, cols};
  }
};

// Throws INVALID_ARGUMENT with hqq's message when g does not divide out*in, and when the group
// count cannot be packed.
Geometry make_geometry(double nbits, std::optional<int64_t> group_size, int axis,
                       int64_t out_features, int64_t in_features, const std::string& module);

// One tensor of the set: its name, dtype and shape.
struct FieldSpec {
  std::string name;
  DLDataType dtype;
  std::vector<int64_t> shape;
};

// Every tensor quantize writes for `p` on a module whose compute dtype is `compute`, in order.
std::vector<FieldSpec> field_specs(const WeightQuantParams& p, const Geometry& g,
                                   FloatKind compute);

// The compute dtype hqq would use for this module: the checkpoint's weight dtype when it is
// F32/F16/BF16 (transformers passes the model dtype as compute_dtype), else F32.
FloatKind compute_kind(const qf_module_info& module);

// {"tensors":[...]} for describe_quantized.
std::string describe_json(const WeightQuantParams& p, const qf_module_info& module);

// The geometry a pre-quantized module's own meta tensors (shape, nbits, group_size, axis,
// packing) describe; checks W_q, scale and zero against it and against the module's features.
Geometry check_tensors(const qf_module_info& module, const qf_tensor_list& tensors);

std::string module_name(const qf_module_info& module);

}  // namespace qforge::plugins::hqq
