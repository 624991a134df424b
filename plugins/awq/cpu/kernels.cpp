// The run-time ISA choice and the dispatchers of cpu/kernels.hpp.
#include "cpu/kernels.hpp"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace qforge::plugins::awq::cpu {

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
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2");
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case Isa::kScalar:
      return true;
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

Isa select_isa() noexcept {
  const char* forced = std::getenv("QFORGE_AWQ_KERNEL");
  if (forced != nullptr) {
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (std::strcmp(forced, isa_name(isa)) == 0 && isa_supported(isa)) return isa;
    }
  }
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

// On a non-x86 build the vector namespaces have no bodies, and isa_supported never lets them
// through.
#if defined(__x86_64__) || defined(__i386__)
#define QF_AWQ_DISPATCH(isa, call) \
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
#define QF_AWQ_DISPATCH(isa, call) \
  (void)(isa);                     \
  return scalar::call
#endif

void dequantize_block(Isa isa, const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0,
                      int64_t o1, float* wt, int64_t ldw) noexcept {
  QF_AWQ_DISPATCH(isa, dequantize_block(w, i0, i1, o0, o1, wt, ldw));
}

void accumulate(Isa isa, const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept {
  QF_AWQ_DISPATCH(isa, accumulate(wt, k, ldw, x, ldx, tokens, o0, o1, y, ldy));
}

#undef QF_AWQ_DISPATCH

}  // namespace qforge::plugins::awq::cpu
