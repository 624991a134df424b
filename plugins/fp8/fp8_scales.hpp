// The FP8 scale arithmetic, in one place for the CPU path and the GPU path (which computes the
// scales on the host from the maxima its kernels find), so both write the same bytes.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "cpu/e4m3.hpp"

namespace qforge::plugins::fp8 {

// FBGEMM's cap on a row's quantize multiplier (fp8_row_quantize_ref): an all-zero row gets it
// rather than inf.
inline constexpr float kFbgemmMaxScale = 448.0f * 512.0f;

struct Fp8Scale {
  float mul = 1.0f;  // quantize multiplier: code = e4m3(w * mul)
  float inv = 1.0f;  // stored dequant multiplier: w ~ code * inv
};

// A tile's scales for its largest magnitude amax. transformers: scale = 448 / amax (1 when
// amax == 0), weight_scale_inv = 1 / scale. The clamp keeps a tile of float32-subnormal weights
// from getting an infinite multiplier. ue8m0 rounds the stored value up to a power of two
// (DeepSeek-V3.1 style), so its reciprocal is exact.
inline Fp8Scale fp8_tile_scale(float amax, const std::string& scale_fmt) {
  if (amax == 0.0f) return {};
  Fp8Scale s;
  s.mul = cpu::kE4m3Max / amax;
  if (!std::isfinite(s.mul)) s.mul = std::numeric_limits<float>::max();
  s.inv = 1.0f / s.mul;
  if (scale_fmt == "ue8m0") {
    s.inv = std::exp2(std::ceil(std::log2(s.inv)));
    s.mul = 1.0f / s.inv;
  }
  return s;
}

// A row's quantize multiplier under FBGEMM's clamp (also the activation rows' rule).
inline float fbgemm_row_multiplier(float amax) {
  return std::min(cpu::kE4m3Max / amax, kFbgemmMaxScale);  // 448 / 0 = inf, clamped
}

inline Fp8Scale fbgemm_row_scale(float amax) {
  Fp8Scale s;
  s.mul = fbgemm_row_multiplier(amax);
  s.inv = 1.0f / s.mul;
  return s;
}

}  // namespace qforge::plugins::fp8
