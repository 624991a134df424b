// The run-time ISA choice and the dispatchers of cpu/kernels.hpp.
#include "cpu/kernels.hpp"

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace qforge::plugins::hqq::cpu {

const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kScalar:
      break;
  }
  return "scalar";
}

bool isa_supported(Isa isa) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kScalar:
      return true;
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

Isa select_isa() noexcept {
  const char* forced = std::getenv("QFORGE_HQQ_KERNEL");
  if (forced != nullptr) {
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (std::strcmp(forced, isa_name(isa)) == 0 && isa_supported(isa)) return isa;
    }
  }
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

float shrink_zero_bound(float inv_beta, float p_minus_1) noexcept {
  if (!(inv_beta > 0.0f) || !(p_minus_1 <= 0.5f)) return 0.0f;
  const double bound =
      0.5 * std::pow(static_cast<double>(inv_beta), 1.0 / (1.0 - static_cast<double>(p_minus_1)));
  if (!(bound >= static_cast<double>(FLT_MIN)) || !(bound <= static_cast<double>(FLT_MAX))) {
    return 0.0f;
  }
  return static_cast<float>(bound);
}

// On a non-x86 build the vector namespaces have no bodies, and isa_supported never lets a
// vector ISA through.
#if defined(__x86_64__) || defined(__i386__)
#define QF_HQQ_DISPATCH(isa, call) \
  switch (isa) {                   \
    case Isa::kAvx512:             \
      return avx512::call;         \
    case Isa::kAvx2:               \
      return avx2::call;           \
    case Isa::kScalar:             \
      break;                       \
  }                                \
  return scalar::call
#else
#define QF_HQQ_DISPATCH(isa, call) \
  (void)(isa);                     \
  return scalar::call
#endif

void group_minmax(Isa isa, const float* w, int64_t g, int64_t j0, int64_t j1, float* lo,
                  float* hi) noexcept {
  QF_HQQ_DISPATCH(isa, group_minmax(w, g, j0, j1, lo, hi));
}

void proximal_step(Isa isa, const StepArgs& a, int64_t j0, int64_t j1, double* err,
                   float* next) noexcept {
  QF_HQQ_DISPATCH(isa, proximal_step(a, j0, j1, err, next));
}

void quantize_codes(Isa isa, const float* w, int64_t g, int64_t j0, int64_t j1, const float* scale,
                    const float* zero, float max_v, uint8_t* codes) noexcept {
  QF_HQQ_DISPATCH(isa, quantize_codes(w, g, j0, j1, scale, zero, max_v, codes));
}

#undef QF_HQQ_DISPATCH

}  // namespace qforge::plugins::hqq::cpu
