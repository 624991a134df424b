// AWQ's own pseudo-quantizer (AutoAWQ awq/quantize/quantizer.py pseudo_quantize_tensor, FORMATS.md
// §2.5) applied round-to-nearest: what AWQ does to each group once its scales and clipping are
// chosen, and the whole of quantizing without calibration. Per output row and group of
// group_size inputs:
//   zero_point: scale = clamp(max - min, 1e-5) / 15, zero = clamp(-round(min / scale), 0, 15),
//               code = clamp(round(w / scale) + zero, 0, 15)
//   symmetric:  scale = clamp(max |w|, 1e-5) / 7, q = clamp(round(w / scale), -8, 7)
// round is half to even (torch.round). The scale is rounded to float16 (what is stored) before the
// zero and the codes are formed from it, as AutoAWQ does on a float16 model, so the file decodes
// to exactly what was coded. The symmetric codes are stored as q + 8 with zero point 8 in qzeros
// (AutoAWQ's WQLinear.from_linear asserts it is given zeros; 8 gives (q + 8 - 8) * scale).
#pragma once

#include <cstdint>

#include "awq_config.hpp"
#include "awq_layout.hpp"

namespace qforge::plugins::awq {

inline constexpr int kMaxCode = 15;
inline constexpr int kSymmetricZero = 8;

// Quantizes w [out, in] (nn.Linear layout, float32). The caller checked packing_problem. Throws
// INVALID_ARGUMENT on a non-finite weight or a group whose scale overflows float16.
Layer quantize_rtn(const float* w, int64_t out, int64_t in, const AwqConfig& config);

}  // namespace qforge::plugins::awq
