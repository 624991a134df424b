// The run-time ISA choice and the dispatchers of cpu/kernels.hpp.
#include "cpu/kernels.hpp"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace qforge::plugins::fp8::cpu {

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
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c");
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    case Isa::kScalar:
      return true;
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

Isa select_isa() noexcept {
  const char* forced = std::getenv("QFORGE_FP8_KERNEL");
  if (forced != nullptr) {
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (std::strcmp(forced, isa_name(isa)) == 0 && isa_supported(isa)) return isa;
    }
  }
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

// On a non-x86 build the vector namespaces have no bodies (their files compile to nothing), and
// isa_supported never lets a vector ISA through.
#if defined(__x86_64__) || defined(__i386__)
#define QF_FP8_DISPATCH(isa, call) \
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
#define QF_FP8_DISPATCH(isa, call) \
  (void)(isa);                     \
  return scalar::call
#endif

void encode(Isa isa, const float* x, int64_t n, uint8_t* out) noexcept {
  QF_FP8_DISPATCH(isa, encode(x, n, out));
}

void decode(Isa isa, const uint8_t* codes, int64_t n, float* out) noexcept {
  QF_FP8_DISPATCH(isa, decode(codes, n, out));
}

uint32_t amax_bits(Isa isa, Dense kind, const void* src, int64_t n) noexcept {
  QF_FP8_DISPATCH(isa, amax_bits(kind, src, n));
}

void encode_scaled(Isa isa, Dense kind, const void* src, int64_t n, float scale,
                   uint8_t* out) noexcept {
  QF_FP8_DISPATCH(isa, encode_scaled(kind, src, n, scale, out));
}

void decode_scaled(Isa isa, const uint8_t* codes, int64_t n, float scale, Dense kind,
                   void* out) noexcept {
  QF_FP8_DISPATCH(isa, decode_scaled(codes, n, scale, kind, out));
}

void round_trip_div(Isa isa, float* x, int64_t n, float s) noexcept {
  QF_FP8_DISPATCH(isa, round_trip_div(x, n, s));
}

void round_trip_mul(Isa isa, const float* x, int64_t n, float m, float* out) noexcept {
  QF_FP8_DISPATCH(isa, round_trip_mul(x, n, m, out));
}

void linear_accumulate(Isa isa, const CodeMatrix& w, const float* x, int64_t tokens,
                       int64_t row_begin, int64_t row_end, float* y, int64_t ldy) {
  QF_FP8_DISPATCH(isa, linear_accumulate(w, x, tokens, row_begin, row_end, y, ldy));
}

#undef QF_FP8_DISPATCH

}  // namespace qforge::plugins::fp8::cpu
