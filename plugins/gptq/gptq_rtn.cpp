// GPTQ's quantizer applied round-to-nearest (see gptq_rtn.hpp).
#include "gptq_rtn.hpp"

#include <algorithm>
#include <cmath>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::gptq {

GroupParams params_from_range(float xmin, float xmax, int bits, bool sym) noexcept {
  const auto maxq = static_cast<float>((1 << bits) - 1);
  if (sym) {
    xmax = std::max(std::fabs(xmin), xmax);
    if (xmin < 0.0f) xmin = -xmax;
  }
  if (xmin == 0.0f && xmax == 0.0f) {
    xmin = -1.0f;
    xmax = 1.0f;
  }
  GroupParams p;
  p.scale = (xmax - xmin) / maxq;
  p.zero = sym ? (maxq + 1.0f) / 2.0f : std::nearbyint(-xmin / p.scale);
  return p;
}

GroupParams find_params(const float* x, int64_t n, int64_t stride, int bits, bool sym) noexcept {
  float xmin = 0.0f;  // the range always includes 0
  float xmax = 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    xmin = std::min(xmin, x[k * stride]);
    xmax = std::max(xmax, x[k * stride]);
  }
  return params_from_range(xmin, xmax, bits, sym);
}

uint8_t quantize_code(float x, const GroupParams& p, int maxq) noexcept {
  const float q = std::nearbyint(x / p.scale) + p.zero;  // torch.round: half to even
  return static_cast<uint8_t>(std::clamp(q, 0.0f, static_cast<float>(maxq)));
}

Unpacked quantize_rtn(const float* w, int64_t out, int64_t in, const GptqConfig& config,
                      const std::vector<int64_t>& order, int64_t* zero_clamped) {
  for (int64_t n = 0; n < out * in; ++n) {
    if (!std::isfinite(w[n])) {
      throw sdk::Error(QF_CODE_INVALID_ARGUMENT,
                       "weight has a non-finite value (" +
                           std::string(std::isnan(w[n]) ? "NaN" : "Inf") + ") at [" +
                           std::to_string(n / in) + ", " + std::to_string(n % in) + "]",
                       "a GPTQ group's scale spans its min and max, which NaN or Inf make "
                       "meaningless",
                       "fix or re-export the source checkpoint; the weights are corrupt");
    }
  }
  Unpacked u;
  u.shapes = make_shapes(config, in, out);
  const Shapes& s = u.shapes;
  const int maxq = config.maxq();
  u.codes.assign(static_cast<size_t>(in * out), 0);
  u.zeros.assign(static_cast<size_t>(s.groups * out), 0);
  u.scales.assign(static_cast<size_t>(s.groups * out), 0.0f);
  u.g_idx.assign(static_cast<size_t>(in), 0);
  std::vector<int64_t> cols(static_cast<size_t>(in));
  for (int64_t j = 0; j < in; ++j) {
    cols[static_cast<size_t>(j)] = order.empty() ? j : order[static_cast<size_t>(j)];
  }
  std::vector<float> group(static_cast<size_t>(s.group_size));
  int64_t clamped = 0;
  for (int64_t g = 0; g < s.groups; ++g) {
    const int64_t j0 = g * s.group_size;
    const int64_t j1 = std::min(in, j0 + s.group_size);
    for (int64_t j = j0; j < j1; ++j)
      u.g_idx[static_cast<size_t>(cols[static_cast<size_t>(j)])] = static_cast<int32_t>(g);
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t j = j0; j < j1; ++j) {
        group[static_cast<size_t>(j - j0)] = w[o * in + cols[static_cast<size_t>(j)]];
      }
      GroupParams p = find_params(group.data(), j1 - j0, 1, config.bits, config.sym);
      if (!config.v2() && p.zero == 0.0f) {
        p.zero = 1.0f;
        ++clamped;
      }
      u.scales[static_cast<size_t>(g * out + o)] = p.scale;
      u.zeros[static_cast<size_t>(g * out + o)] = static_cast<int32_t>(p.zero);
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t i = cols[static_cast<size_t>(j)];
        u.codes[static_cast<size_t>(i * out + o)] =
            quantize_code(group[static_cast<size_t>(j - j0)], p, maxq);
      }
    }
  }
  if (zero_clamped != nullptr) *zero_clamped = clamped;
  return u;
}

}  // namespace qforge::plugins::gptq
