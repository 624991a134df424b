// hqq's per-group affine quantization and its proximal zero-point optimizer
// (hqq/core/quantize.py Quantizer.quantize, hqq/core/optimize.py optimize_weights_proximal =
// optimize_weights_proximal_legacy), on the CPU in float32 as hqq runs it off CUDA.
//
// Weights are passed group-major: groups x g floats, group j's k-th element at [j * g + k]
// (hqq_layout.hpp's Geometry maps that to the weight). `scale` here is hqq's quantize
// multiplier (max_v / (max - min)); the stored scale is its inverse.
#pragma once

#include <cstdint>
#include <qforge/qf_plugin.hpp>
#include <vector>

namespace qforge::plugins::hqq {

struct ProximalParams {
  float lp_norm = 0.7f;
  float beta = 10.0f;  // the legacy solver never multiplies it by kappa (1.01)
  int iters = 20;
};

// min/max per group: scale = max_v / (max - min), 1 where |max - min| <= 1e-4, clamped to
// <= 2e4; zero = -min * scale, rounded half-to-even when round_zero.
void init_scale_zero(const float* w, int64_t groups, int64_t g, int max_v, bool round_zero,
                     float* scale, float* zero);

struct ProximalTrace {
  int iterations = 0;         // steps run (the last one failed to improve unless == iters)
  std::vector<float> errors;  // mean |W - W_r| of each step, before its zero update
};

// Updates `zero` in place. Each step quantizes with the current zero, measures
// mean|W - W_r| over the whole tensor, and computes the next zero; it stops at the first step
// that does not improve on the best error, keeping that step's zero update (as hqq does).
ProximalTrace optimize_zero(const sdk::Call& call, const float* w, int64_t groups, int64_t g,
                            int max_v, const float* scale, float* zero,
                            const ProximalParams& params = {});

// codes[j * g + k] = clamp(round(w * scale + zero), 0, max_v), round half to even.
void quantize_codes(const sdk::Call& call, const float* w, int64_t groups, int64_t g, int max_v,
                    const float* scale, const float* zero, uint8_t* codes);

// mean |W - (q - zero) / scale| for given codes (what the optimizer measures).
double mean_abs_error(const float* w, int64_t groups, int64_t g, const uint8_t* codes,
                      const float* scale, const float* zero);

}  // namespace qforge::plugins::hqq
