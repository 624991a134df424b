// hqq's min/max init and proximal zero-point solver (see hqq_optimize.hpp) on the kernels of
// cpu/kernels.hpp (scalar reference, AVX2, AVX-512; QFORGE_HQQ_KERNEL picks one). Every
// operation is a separate float32 rounding, in hqq's order (the plugin is built with
// -ffp-contract=off); group means and the error are summed in double, so they can differ from
// PyTorch's float cascade sums in the last bit.
#include "hqq_optimize.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/kernels.hpp"

namespace qforge::plugins::hqq {

void init_scale_zero(const float* w, int64_t groups, int64_t g, int max_v, bool round_zero,
                     float* scale, float* zero) {
  // lo / hi land in scale / zero first: no extra buffers.
  cpu::group_minmax(cpu::select_isa(), w, g, 0, groups, zero, scale);
  for (int64_t j = 0; j < groups; ++j) {
    const float lo = zero[j];
    const float hi = scale[j];
    const float denom = hi - lo;
    // Python's `max_v / denom` is Tensor.__rtruediv__: reciprocal, then a multiply (two
    // roundings; a plain max_v / denom differs in the last bit for some groups).
    float s = (1.0f / denom) * static_cast<float>(max_v);
    if (std::fabs(denom) <= 1e-4f) s = 1.0f;  // flat group: avoid max_v / 0
    s = std::min(s, 2e4f);
    float z = -lo * s;
    if (round_zero) z = std::nearbyint(z);
    scale[j] = s;
    zero[j] = z;
  }
}

ProximalTrace optimize_zero(const sdk::Call& call, const float* w, int64_t groups, int64_t g,
                            int max_v, const float* scale, float* zero,
                            const ProximalParams& params) {
  ProximalTrace trace;
  const cpu::Isa isa = cpu::select_isa();
  cpu::StepArgs args;
  args.w = w;
  args.g = g;
  args.scale = scale;
  args.zero = zero;
  args.max_v = static_cast<float>(max_v);
  args.inv_beta = static_cast<float>(1.0 / static_cast<double>(params.beta));
  args.p_minus_1 = static_cast<float>(static_cast<double>(params.lp_norm) - 1.0);
  std::vector<double> group_error(static_cast<size_t>(groups));
  std::vector<float> next(static_cast<size_t>(groups));
  float best = std::numeric_limits<float>::infinity();
  const double count = static_cast<double>(groups) * static_cast<double>(g);
  for (int it = 0; it < params.iters; ++it) {
    call.throw_if_cancelled();
    call.parallel_for(groups, 64, [&](int64_t j0, int64_t j1) {
      cpu::proximal_step(isa, args, j0, j1, group_error.data(), next.data());
    });
    double total = 0.0;
    for (double e : group_error) total += e;
    const float error = static_cast<float>(total / count);
    std::copy(next.begin(), next.end(), zero);  // hqq updates zero before testing the error
    trace.errors.push_back(error);
    ++trace.iterations;
    if (error < best) {
      best = error;
    } else {
      break;
    }
  }
  return trace;
}

void quantize_codes(const sdk::Call& call, const float* w, int64_t groups, int64_t g, int max_v,
                    const float* scale, const float* zero, uint8_t* codes) {
  const cpu::Isa isa = cpu::select_isa();
  const float mv = static_cast<float>(max_v);
  call.parallel_for(groups, 64, [&](int64_t j0, int64_t j1) {
    cpu::quantize_codes(isa, w, g, j0, j1, scale, zero, mv, codes);
  });
}

double mean_abs_error(const float* w, int64_t groups, int64_t g, const uint8_t* codes,
                      const float* scale, const float* zero) {
  double total = 0.0;
  for (int64_t j = 0; j < groups; ++j) {
    for (int64_t k = 0; k < g; ++k) {
      const float r = (static_cast<float>(codes[j * g + k]) - zero[j]) / scale[j];
      total += std::fabs(w[j * g + k] - r);
    }
  }
  const double n = static_cast<double>(groups) * static_cast<double>(g);
  return n > 0 ? total / n : 0.0;
}

}  // namespace qforge::plugins::hqq
