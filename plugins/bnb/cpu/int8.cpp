// LLM.int8 scalar reference kernels and the run-time choice of the int8 product's ISA.
#include "cpu/int8.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "cpu/half.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace qforge::plugins::bnb::cpu {
namespace {

#if defined(__x86_64__)
// Linux gates AMX tile data behind a per-process permission (arch_prctl ARCH_REQ_XCOMP_PERM
// for XFEATURE_XTILEDATA); without it the first tile instruction faults with SIGILL. The
// permission is process-wide and requesting it again is harmless.
constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

bool amx_usable() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  const bool tile = (d >> 24) & 1u, int8 = (d >> 25) & 1u;
  if (!tile || !int8) return false;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0 || ((c >> 27) & 1u) == 0) return false;  // OSXSAVE
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  (void)hi;
  if (((lo >> 17) & 3u) != 3u) return false;  // XTILECFG and XTILEDATA enabled by the OS
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}
#endif

}  // namespace

const char* int8_isa_name(Int8Isa isa) noexcept {
  switch (isa) {
    case Int8Isa::kAmx:
      return "amx";
    case Int8Isa::kAvx512Vnni:
      return "avx512_vnni";
    case Int8Isa::kAvx2:
      return "avx2";
    case Int8Isa::kScalar:
      break;
  }
  return "scalar";
}

bool int8_isa_supported(Int8Isa isa) noexcept {
#if defined(__x86_64__)
  switch (isa) {
    case Int8Isa::kAmx: {
      static const bool usable = amx_usable();
      return usable;
    }
    case Int8Isa::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni");
    case Int8Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    case Int8Isa::kScalar:
      return true;
  }
  return false;
#else
  return isa == Int8Isa::kScalar;
#endif
}

Int8Isa select_int8_isa() noexcept {
  const char* forced = std::getenv("QFORGE_BNB_KERNEL");
  if (forced != nullptr) {
    // The 4-bit kernels' name "avx512" means the best AVX-512 kernel here too.
    const char* name = std::strcmp(forced, "avx512") == 0 ? "avx512_vnni" : forced;
    for (Int8Isa isa : {Int8Isa::kScalar, Int8Isa::kAvx2, Int8Isa::kAvx512Vnni, Int8Isa::kAmx}) {
      if (std::strcmp(name, int8_isa_name(isa)) == 0 && int8_isa_supported(isa)) return isa;
    }
  }
  for (Int8Isa isa : {Int8Isa::kAmx, Int8Isa::kAvx512Vnni, Int8Isa::kAvx2}) {
    if (int8_isa_supported(isa)) return isa;
  }
  return Int8Isa::kScalar;
}

float quantize_row_int8(const float* v, int64_t n, int8_t* codes) noexcept {
  float absmax = 0.0f;
  for (int64_t k = 0; k < n; ++k) absmax = std::fmax(absmax, std::fabs(v[k]));
  if (absmax == 0.0f) {
    // bitsandbytes computes 0 * (127 / 0) = NaN here, which CUDA converts to 0 (PyTorch's CPU
    // conversion is undefined); 0 is the only code that dequantizes to the row's zeros.
    std::memset(codes, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const float scale = int8_quant_scale(absmax);
  for (int64_t k = 0; k < n; ++k) {
    // |v| <= absmax, so |v * scale| <= 127 (plus at most one ulp): never out of int8 range.
    codes[k] = round_to_code(v[k] * scale);
  }
  return absmax;
}

int64_t quantize_dense_int8_scalar(Dense kind, const void* src, int64_t cols, int64_t row_begin,
                                   int64_t row_end, int8_t* codes, float* scb) noexcept {
  const auto* f32 = static_cast<const float*>(src);
  const auto* u16 = static_cast<const uint16_t*>(src);
  for (int64_t r = row_begin; r < row_end; ++r) {
    // The float16 value of element k of row r.
    const auto h = [&](int64_t k) {
      const int64_t e = r * cols + k;
      const float v = kind == Dense::kF32   ? f32[e]
                      : kind == Dense::kF16 ? f16_to_f32(u16[e])
                                            : bf16_to_f32(u16[e]);
      return f16_to_f32(f32_to_f16(v));
    };
    float absmax = 0.0f;
    for (int64_t k = 0; k < cols; ++k) {
      const float a = std::fabs(h(k));
      if (!(a <= 65504.0f)) return r;  // NaN, Inf, or rounded to Inf by the cast
      absmax = std::fmax(absmax, a);
    }
    scb[r] = absmax;
    int8_t* q = codes + r * cols;
    if (absmax == 0.0f) {
      std::memset(q, 0, static_cast<size_t>(cols));
      continue;
    }
    const float scale = int8_quant_scale(absmax);
    for (int64_t k = 0; k < cols; ++k) q[k] = round_to_code(h(k) * scale);
  }
  return row_end;
}

int64_t quantize_dense_int8(Int8Isa isa, Dense kind, const void* src, int64_t cols,
                            int64_t row_begin, int64_t row_end, int8_t* codes,
                            float* scb) noexcept {
  // Every CPU with AVX-512 VNNI or AMX has AVX2 and F16C too.
  if (isa != Int8Isa::kScalar && int8_isa_supported(Int8Isa::kAvx2)) {
    return quantize_dense_int8_avx2(kind, src, cols, row_begin, row_end, codes, scb);
  }
  return quantize_dense_int8_scalar(kind, src, cols, row_begin, row_end, codes, scb);
}

void dequantize_row_int8(const int8_t* codes, float scb, int64_t n, float* out) noexcept {
  for (int64_t k = 0; k < n; ++k) out[k] = (static_cast<float>(codes[k]) * scb) * kInt8Dequant;
}

void dequantize_dense_int8_scalar(const int8_t* codes, const float* scb, int64_t cols,
                                  int64_t row_begin, int64_t row_end, Dense kind,
                                  void* out) noexcept {
  auto* f32 = static_cast<float*>(out);
  auto* u16 = static_cast<uint16_t*>(out);
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t e = r * cols + k;
      const float v = (static_cast<float>(codes[e]) * scb[r]) * kInt8Dequant;
      if (kind == Dense::kF32) {
        f32[e] = v;
      } else {
        u16[e] = kind == Dense::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
      }
    }
  }
}

void dequantize_dense_int8(Int8Isa isa, const int8_t* codes, const float* scb, int64_t cols,
                           int64_t row_begin, int64_t row_end, Dense kind, void* out) noexcept {
  if (isa != Int8Isa::kScalar && int8_isa_supported(Int8Isa::kAvx2)) {
    dequantize_dense_int8_avx2(codes, scb, cols, row_begin, row_end, kind, out);
    return;
  }
  dequantize_dense_int8_scalar(codes, scb, cols, row_begin, row_end, kind, out);
}

int64_t quantize_activations_int8(const float* xh, int64_t rows, int64_t in, float threshold,
                                  int8_t* xq, int64_t ldq, float* row_scale,
                                  uint8_t* outlier) noexcept {
  std::memset(outlier, 0, static_cast<size_t>(in));
  const bool decompose = threshold > 0.0f;
  int64_t count = 0;
  if (decompose) {
    for (int64_t m = 0; m < rows; ++m) {
      const float* x = xh + m * in;
      for (int64_t c = 0; c < in; ++c) outlier[c] |= std::fabs(x[c]) >= threshold ? 1 : 0;
    }
    for (int64_t c = 0; c < in; ++c) count += outlier[c];
  }
  for (int64_t m = 0; m < rows; ++m) {
    const float* x = xh + m * in;
    int8_t* q = xq + m * ldq;
    float absmax = 0.0f;
    for (int64_t c = 0; c < in; ++c) {
      const float a = std::fabs(x[c]);
      if (!decompose || a < threshold) absmax = std::fmax(absmax, a);
    }
    row_scale[m] = absmax;
    const float scale = absmax == 0.0f ? 0.0f : int8_quant_scale(absmax);
    for (int64_t c = 0; c < in; ++c) {
      // An outlier element of this row was zeroed before quantizing and an outlier column is
      // zeroed afterwards: both leave code 0.
      q[c] = outlier[c] != 0 ? int8_t{0} : round_to_code(x[c] * scale);
    }
  }
  return count;
}

void gemm_int8_scalar(const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w, int64_t in,
                      int64_t o_begin, int64_t o_end, int32_t* acc, int64_t ldacc) noexcept {
  for (int64_t o = o_begin; o < o_end; ++o) {
    const int8_t* wr = w + o * in;
    for (int64_t m = 0; m < rows; ++m) {
      const int8_t* x = xq + m * ldq;
      int32_t sum = 0;
      for (int64_t k = 0; k < in; ++k) sum += static_cast<int32_t>(x[k]) * wr[k];
      acc[m * ldacc + o] = sum;
    }
  }
}

void gemm_int8(Int8Isa isa, const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w,
               int64_t in, int64_t o_begin, int64_t o_end, int32_t* acc, int64_t ldacc) {
  switch (isa) {
    case Int8Isa::kAmx:
      gemm_int8_amx(xq, rows, ldq, w, in, o_begin, o_end, acc, ldacc);
      return;
    case Int8Isa::kAvx512Vnni:
      gemm_int8_avx512_vnni(xq, rows, ldq, w, in, o_begin, o_end, acc, ldacc);
      return;
    case Int8Isa::kAvx2:
      gemm_int8_avx2(xq, rows, ldq, w, in, o_begin, o_end, acc, ldacc);
      return;
    case Int8Isa::kScalar:
      break;
  }
  gemm_int8_scalar(xq, rows, ldq, w, in, o_begin, o_end, acc, ldacc);
}

}  // namespace qforge::plugins::bnb::cpu
