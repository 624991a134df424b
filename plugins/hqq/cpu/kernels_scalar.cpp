// The scalar reference of cpu/kernels.hpp: hqq's float32 operations one by one (the plugin is
// built with -ffp-contract=off), glibc's powf, group sums in double in element order.
#include <algorithm>
#include <cmath>

#include "cpu/kernels.hpp"

namespace qforge::plugins::hqq::cpu::scalar {
namespace {

inline float quant(float w, float s, float z, float max_v) {
  const float v = std::nearbyint(w * s + z);  // half to even, as torch.round
  return std::min(std::max(v, 0.0f), max_v);
}

// shrink_lp_op: sign(x) * relu(|x| - (1/beta) * |x|^(p-1)). |x| == 0 gives pow = inf, so
// 0 - inf clamps to 0, and sign(0) == 0: the result is 0 as in PyTorch.
inline float shrink(float x, float inv_beta, float p_minus_1) {
  const float a = std::fabs(x);
  const float v = std::max(a - inv_beta * std::pow(a, p_minus_1), 0.0f);
  return x > 0.0f ? v : (x < 0.0f ? -v : 0.0f);
}

}  // namespace

void group_minmax(const float* w, int64_t g, int64_t j0, int64_t j1, float* lo,
                  float* hi) noexcept {
  for (int64_t j = j0; j < j1; ++j) {
    const float* p = w + j * g;
    float l = p[0];
    float h = p[0];
    for (int64_t k = 1; k < g; ++k) {
      l = std::min(l, p[k]);
      h = std::max(h, p[k]);
    }
    lo[j] = l;
    hi[j] = h;
  }
}

void proximal_step(const StepArgs& a, int64_t j0, int64_t j1, double* err, float* next) noexcept {
  const int64_t g = a.g;
  for (int64_t j = j0; j < j1; ++j) {
    const float* p = a.w + j * g;
    const float s = a.scale[j];
    const float z = a.zero[j];
    double e_sum = 0.0;
    double acc = 0.0;
    for (int64_t k = 0; k < g; ++k) {
      const float q = quant(p[k], s, z, a.max_v);
      const float r = (q - z) / s;
      const float d = p[k] - r;
      e_sum += std::fabs(d);
      const float e = shrink(d, a.inv_beta, a.p_minus_1);
      acc += q - (p[k] - e) * s;
    }
    err[j] = e_sum;
    next[j] = static_cast<float>(acc / static_cast<double>(g));
  }
}

void quantize_codes(const float* w, int64_t g, int64_t j0, int64_t j1, const float* scale,
                    const float* zero, float max_v, uint8_t* codes) noexcept {
  for (int64_t j = j0; j < j1; ++j) {
    for (int64_t k = 0; k < g; ++k) {
      codes[j * g + k] = static_cast<uint8_t>(quant(w[j * g + k], scale[j], zero[j], max_v));
    }
  }
}

}  // namespace qforge::plugins::hqq::cpu::scalar
