// The fine-grained FP8 tensor set of one Linear (FORMATS.md §2.6): `weight` F8_E4M3 [O, I],
// `weight_scale_inv` F32 [ceil(O/bm), ceil(I/bn)] (scalar [] when weight_block_size is null),
// `activation_scale` F32 [] for activation_scheme "static". The tile arithmetic lives here so
// quantize, dequantize, forward and the checks agree on it.
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fp8_config.hpp"

namespace qforge::plugins::fp8 {

// How a [rows, cols] weight splits into scale tiles. Per-tensor is one tile of the whole matrix.
struct Tiling {
  int64_t rows = 0, cols = 0;
  int64_t bm = 0, bn = 0;   // tile size (the last row/column of tiles may be ragged)
  bool per_tensor = false;  // weight_block_size null: scale is a scalar []

  int64_t tile_rows() const noexcept { return (rows + bm - 1) / bm; }
  int64_t tile_cols() const noexcept { return (cols + bn - 1) / bn; }
  // The weight_scale_inv shape as stored.
  std::vector<int64_t> scale_shape() const;
};

Tiling make_tiling(const Fp8Config& config, int64_t rows, int64_t cols);

// {"tensors":[...]} for describe_quantized.
std::string describe_json(const Fp8Config& config, const qf_module_info& module);

// Checks a pre-quantized module's tensors (names, dtypes, shapes); ragged tiles are accepted.
void check_tensors(const Fp8Config& config, const qf_module_info& module,
                   const qf_tensor_list& tensors);

std::string module_name(const qf_module_info& module);

}  // namespace qforge::plugins::fp8
