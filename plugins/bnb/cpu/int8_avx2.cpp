// AVX2 kernels of LLM.int8: the weight quantizer (F16C for the float16 cast) and the int8
// product. Int8 product: int8 widened to int16 (vpmovsxbw), then vpmaddwd sums pairs of int16
// products into int32 lanes. Exact (|x * w| <= 127 * 128, pair sums far from overflow), and
// unlike vpmaddubsw it cannot saturate, so it equals the scalar reference. See
// linear_4bit_avx2.cpp for why the intrinsics header is wrapped.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <cstring>

#include "cpu/half.hpp"
#include "cpu/int8.hpp"

#define QF_AVX2 __attribute__((target("avx2")))

namespace qforge::plugins::bnb::cpu {
namespace {

QF_AVX2 inline __m256i widen16(const int8_t* p) noexcept {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

QF_AVX2 inline int32_t hsum(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

int32_t tail(const int8_t* x, const int8_t* w, int64_t k0, int64_t in) noexcept {
  int32_t sum = 0;
  for (int64_t k = k0; k < in; ++k) sum += static_cast<int32_t>(x[k]) * w[k];
  return sum;
}

}  // namespace

QF_AVX2 void gemm_int8_avx2(const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w,
                            int64_t in, int64_t o_begin, int64_t o_end, int32_t* acc,
                            int64_t ldacc) noexcept {
  const int64_t whole = in - in % 16;
  for (int64_t o = o_begin; o < o_end; ++o) {
    const int8_t* wr = w + o * in;
    int64_t m = 0;
    // Four activation rows per pass share each widened weight vector.
    for (; m + 4 <= rows; m += 4) {
      const int8_t* x0 = xq + m * ldq;
      const int8_t* x1 = x0 + ldq;
      const int8_t* x2 = x1 + ldq;
      const int8_t* x3 = x2 + ldq;
      __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t k = 0; k < whole; k += 16) {
        const __m256i wv = widen16(wr + k);
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(widen16(x0 + k), wv));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(widen16(x1 + k), wv));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(widen16(x2 + k), wv));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(widen16(x3 + k), wv));
      }
      acc[m * ldacc + o] = hsum(a0) + tail(x0, wr, whole, in);
      acc[(m + 1) * ldacc + o] = hsum(a1) + tail(x1, wr, whole, in);
      acc[(m + 2) * ldacc + o] = hsum(a2) + tail(x2, wr, whole, in);
      acc[(m + 3) * ldacc + o] = hsum(a3) + tail(x3, wr, whole, in);
    }
    for (; m < rows; ++m) {
      const int8_t* x = xq + m * ldq;
      __m256i a = _mm256_setzero_si256();
      for (int64_t k = 0; k < whole; k += 16) {
        a = _mm256_add_epi32(a, _mm256_madd_epi16(widen16(x + k), widen16(wr + k)));
      }
      acc[m * ldacc + o] = hsum(a) + tail(x, wr, whole, in);
    }
  }
}

}  // namespace qforge::plugins::bnb::cpu

// ------------------------------------------------------------------ weight quantization

#define QF_AVX2_F16C __attribute__((target("avx2,f16c")))

namespace qforge::plugins::bnb::cpu {
namespace {

// 8 elements from `p` (kind) as float32, rounded through float16 (F16C rounds to nearest
// even like f32_to_f16; overflow gives Inf).
QF_AVX2_F16C inline __m256 load_h8(Dense kind, const void* p) noexcept {
  __m256 v;
  if (kind == Dense::kF32) {
    v = _mm256_loadu_ps(static_cast<const float*>(p));
  } else if (kind == Dense::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));  // already float16
  } else {
    v = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p))), 16));
  }
  return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

QF_AVX2_F16C inline __m256i codes8(Dense kind, const void* p, __m256 scale) noexcept {
  const __m256 y = _mm256_mul_ps(load_h8(kind, p), scale);
  return _mm256_cvtps_epi32(_mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

}  // namespace

QF_AVX2_F16C int64_t quantize_dense_int8_avx2(Dense kind, const void* src, int64_t cols,
                                              int64_t row_begin, int64_t row_end, int8_t* codes,
                                              float* scb) noexcept {
  const int64_t size = kind == Dense::kF32 ? 4 : 2;
  const auto* base = static_cast<const unsigned char*>(src);
  const int64_t whole8 = cols - cols % 8, whole32 = cols - cols % 32;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 f16_max = _mm256_set1_ps(65504.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const unsigned char* row = base + r * cols * size;
    __m256 m = _mm256_setzero_ps();
    __m256 bad = _mm256_setzero_ps();
    for (int64_t k = 0; k < whole8; k += 8) {
      const __m256 a = _mm256_and_ps(load_h8(kind, row + k * size), abs_mask);
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, f16_max, _CMP_NLE_UQ));  // NaN or > max
      m = _mm256_max_ps(m, a);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    float absmax = _mm_cvtss_f32(m4);
    bool finite = _mm256_movemask_ps(bad) == 0;
    // The tail (cols % 8) through the scalar kernel's exact steps.
    if (whole8 < cols) {
      float tail_max = 0.0f;
      for (int64_t k = whole8; k < cols; ++k) {
        const unsigned char* p = row + k * size;
        float v;
        if (kind == Dense::kF32) {
          std::memcpy(&v, p, 4);
        } else {
          uint16_t u;
          std::memcpy(&u, p, 2);
          v = kind == Dense::kF16 ? f16_to_f32(u) : bf16_to_f32(u);
        }
        const float a = std::fabs(f16_to_f32(f32_to_f16(v)));
        if (!(a <= 65504.0f)) finite = false;
        tail_max = std::fmax(tail_max, a);
      }
      absmax = std::fmax(absmax, tail_max);
    }
    if (!finite) return r;
    scb[r] = absmax;
    int8_t* q = codes + r * cols;
    if (absmax == 0.0f) {
      std::memset(q, 0, static_cast<size_t>(cols));
      continue;
    }
    const float scale_s = int8_quant_scale(absmax);
    const __m256 scale = _mm256_set1_ps(scale_s);
    int64_t k = 0;
    for (; k < whole32; k += 32) {
      const __m256i a = codes8(kind, row + k * size, scale);
      const __m256i b = codes8(kind, row + (k + 8) * size, scale);
      const __m256i c = codes8(kind, row + (k + 16) * size, scale);
      const __m256i d = codes8(kind, row + (k + 24) * size, scale);
      // packs work per 128-bit lane; the final dword permute restores element order.
      const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
      const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), bytes);
    }
    for (; k < cols; ++k) {
      const unsigned char* p = row + k * size;
      float v;
      if (kind == Dense::kF32) {
        std::memcpy(&v, p, 4);
      } else {
        uint16_t u;
        std::memcpy(&u, p, 2);
        v = kind == Dense::kF16 ? f16_to_f32(u) : bf16_to_f32(u);
      }
      q[k] = round_to_code(f16_to_f32(f32_to_f16(v)) * scale_s);
    }
  }
  return row_end;
}

}  // namespace qforge::plugins::bnb::cpu

// ------------------------------------------------------------------ dequantization

namespace qforge::plugins::bnb::cpu {
namespace {

// float32 -> bfloat16 bits, nearest even, in the low half of each dword (finite inputs: every
// dequantized value is finite).
QF_AVX2 inline __m256i bf16_bits(__m256 v) noexcept {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  return _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))),
                           16);
}

}  // namespace

QF_AVX2_F16C void dequantize_dense_int8_avx2(const int8_t* codes, const float* scb, int64_t cols,
                                             int64_t row_begin, int64_t row_end, Dense kind,
                                             void* out) noexcept {
  const int64_t whole16 = cols - cols % 16;
  const __m256 c = _mm256_set1_ps(kInt8Dequant);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int8_t* q = codes + r * cols;
    const __m256 s = _mm256_set1_ps(scb[r]);
    int64_t k = 0;
    for (; k < whole16; k += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k));
      // (float(q) * scb) * 1/127, the scalar kernel's order.
      const __m256 lo =
          _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s), c);
      const __m256 hi = _mm256_mul_ps(
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8))), s), c);
      const int64_t e = r * cols + k;
      if (kind == Dense::kF32) {
        _mm256_storeu_ps(static_cast<float*>(out) + e, lo);
        _mm256_storeu_ps(static_cast<float*>(out) + e + 8, hi);
      } else if (kind == Dense::kF16) {
        auto* dst = static_cast<uint16_t*>(out) + e;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst),
                         _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 8),
                         _mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      } else {
        // packus works per 128-bit lane; the qword permute restores element order.
        const __m256i packed =
            _mm256_permute4x64_epi64(_mm256_packus_epi32(bf16_bits(lo), bf16_bits(hi)), 0xd8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(out) + e), packed);
      }
    }
    for (; k < cols; ++k) {  // the row's tail, as the scalar kernel does it
      const int64_t e = r * cols + k;
      const float v = (static_cast<float>(q[k]) * scb[r]) * kInt8Dequant;
      if (kind == Dense::kF32) {
        static_cast<float*>(out)[e] = v;
      } else {
        static_cast<uint16_t*>(out)[e] = kind == Dense::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
      }
    }
  }
}

}  // namespace qforge::plugins::bnb::cpu
