// Round-to-nearest (RTN) quantization with GPTQ's quantizer (AutoGPTQ quantizer.py, FORMATS.md
// §2.4 item 8): the data-free fallback for a module the host gives no Hessian, and the quantizer
// the GPTQ algorithm (gptq_algorithm.hpp) applies column by column. Each output row is quantized
// per group of group_size inputs. The group parameters follow find_params exactly (range forced
// to include 0; sym: symmetric range and zero (maxq+1)/2; an all-zero group gets [-1, 1]); codes
// are clamp(round_half_even(w / scale) + zero, 0, maxq), all in float32.
#pragma once

#include <cstdint>
#include <vector>

#include "gptq_config.hpp"
#include "gptq_layout.hpp"

namespace qforge::plugins::gptq {

struct GroupParams {
  float scale = 1.0f;
  float zero = 0.0f;  // an integer value, kept as float as the quantizer keeps it
};

// The parameters of a group whose values span [xmin, xmax] (xmin <= 0 <= xmax: the quantizer's
// range always includes 0); find_params once the range is known.
GroupParams params_from_range(float xmin, float xmax, int bits, bool sym) noexcept;

// find_params over x[0], x[stride], ..., x[(n-1)*stride].
GroupParams find_params(const float* x, int64_t n, int64_t stride, int bits, bool sym) noexcept;

// The quantizer's code of x.
uint8_t quantize_code(float x, const GroupParams& p, int maxq) noexcept;

// Quantizes w [O, I] (nn.Linear layout, float32). `order` is the column processing order
// (act-order's permutation; empty = natural): group k holds the columns order[k*gs .. k*gs+gs),
// so g_idx[order[j]] = j / group_size, as GPTQ's un-permuted g_idx has it. v1 (checkpoint_format
// "gptq") cannot store a zero point of 0 (it stores zero - 1), so for v1 an asymmetric group
// whose zero would be 0 is given zero 1 and coded with it (the file then decodes to what was
// coded); `zero_clamped` counts those groups. Throws INVALID_ARGUMENT on a non-finite weight.
Unpacked quantize_rtn(const float* w, int64_t out, int64_t in, const GptqConfig& config,
                      const std::vector<int64_t>& order, int64_t* zero_clamped = nullptr);

}  // namespace qforge::plugins::gptq
