// AWQ's pseudo-quantizer, round-to-nearest (see awq_rtn.hpp).
#include "awq_rtn.hpp"

#include <algorithm>
#include <cmath>
#include <qforge/qf_plugin.hpp>

#include "dense_tensor_io.hpp"  // plugins/common

namespace qforge::plugins::awq {
namespace {

using sdk::Error;

float stored_scale(float scale, int64_t row, int64_t group) {
  const float s = half_to_float(float_to_half(scale));
  if (!std::isfinite(s) || s <= 0.0f) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "row " + std::to_string(row) + ", group " + std::to_string(group) + ": scale " +
                    std::to_string(scale) + " does not fit float16",
                "AWQ stores scales as float16 (largest 65504); this group's range is too wide",
                "check the source weights (they are far outside a float16 model's range)");
  }
  return s;
}

}  // namespace

Layer quantize_rtn(const float* w, int64_t out, int64_t in, const AwqConfig& config) {
  for (int64_t n = 0; n < out * in; ++n) {
    if (!std::isfinite(w[n])) {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "weight has a non-finite value (" +
                      std::string(std::isnan(w[n]) ? "NaN" : "Inf") + ") at [" +
                      std::to_string(n / in) + ", " + std::to_string(n % in) + "]",
                  "AWQ's quantizer asserts the weight has no NaN; a group's scale spans its "
                  "range, which Inf makes meaningless",
                  "fix or re-export the source checkpoint; the weights are corrupt");
    }
  }
  Layer l;
  l.shapes = make_shapes(config, in, out);
  const Shapes& s = l.shapes;
  l.codes.assign(static_cast<size_t>(in * out), 0);
  l.zeros.assign(static_cast<size_t>(s.groups * out), 0);
  l.scales.assign(static_cast<size_t>(s.groups * out), 0.0f);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* x = w + o * in + g * s.group_size;
      float lo = x[0], hi = x[0], amax = 0.0f;
      for (int64_t k = 0; k < s.group_size; ++k) {
        lo = std::min(lo, x[k]);
        hi = std::max(hi, x[k]);
        amax = std::max(amax, std::fabs(x[k]));
      }
      float scale = 0.0f;
      float zero = 0.0f;
      float qmin = 0.0f, qmax = static_cast<float>(kMaxCode);
      if (config.zero_point) {
        scale = stored_scale(std::max(hi - lo, 1e-5f) / 15.0f, o, g);
        zero = std::clamp(-std::nearbyint(lo / scale), 0.0f, static_cast<float>(kMaxCode));
      } else {
        scale = stored_scale(std::max(amax, 1e-5f) / 7.0f, o, g);
        zero = static_cast<float>(kSymmetricZero);
        qmin = -8.0f;
        qmax = 7.0f;
      }
      const size_t gi = static_cast<size_t>(g * out + o);
      l.scales[gi] = scale;
      l.zeros[gi] = static_cast<uint8_t>(zero);
      for (int64_t k = 0; k < s.group_size; ++k) {
        float q = std::nearbyint(x[k] / scale);
        // zero_point: clamp(q + zero, 0, 15); symmetric: clamp(q, -8, 7) + 8. Same code either
        // way once the range is shifted; written apart to keep AWQ's two formulas visible.
        q = config.zero_point ? std::clamp(q + zero, qmin, qmax) : std::clamp(q, qmin, qmax) + zero;
        const int64_t i = g * s.group_size + k;
        l.codes[static_cast<size_t>(i * out + o)] = static_cast<uint8_t>(q);
      }
    }
  }
  return l;
}

}  // namespace qforge::plugins::awq
