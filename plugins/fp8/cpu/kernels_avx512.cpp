// AVX-512 (F, BW, VL) bodies of cpu/kernels.hpp, 16 floats per vector: the AVX2 method of
// note [fp8 vector e4m3] (kernels_avx2.cpp) with mask registers for the selects, and the
// rounding of the subnormal branch embedded in the conversion ({rn-sae}), so it does not
// depend on MXCSR either.
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <vector>

#include "cpu/e4m3.hpp"
#include "cpu/half.hpp"
#include "cpu/kernels.hpp"
#include "cpu/transpose8.hpp"

#define QF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c")))

namespace qforge::plugins::fp8::cpu::avx512 {
namespace {

QF_AVX512 inline __m512i encode16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i a = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF));
  const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(bits, 24), _mm512_set1_epi32(0x80));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(a, 20), _mm512_set1_epi32(1));
  const __m512i normal = _mm512_sub_epi32(
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32(0x7FFFF)), lsb), 20),
      _mm512_set1_epi32(120 << 3));
  const __m512 scaled = _mm512_mul_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(512.0f));
  const __m512i sub =
      _mm512_cvt_roundps_epi32(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512i code = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x3C7FFFFF)),
                                         sub, normal);
  code = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x43DFFFFF)), code,
                                 _mm512_set1_epi32(kE4m3MaxCode));
  code = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7F800000)), code,
                                 _mm512_set1_epi32(kE4m3NanCode));
  return _mm512_or_si512(code, sign);
}

QF_AVX512 inline __m512 decode16(__m512i c, __m512i nan_bits) {
  const __m512i mag = _mm512_and_si512(c, _mm512_set1_epi32(0x7F));
  const __m512i normal = _mm512_add_epi32(_mm512_slli_epi32(mag, 20), _mm512_set1_epi32(120 << 23));
  const __m512i sub =
      _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(mag), _mm512_set1_ps(1.0f / 512.0f)));
  __m512i v =
      _mm512_mask_blend_epi32(_mm512_cmplt_epi32_mask(mag, _mm512_set1_epi32(8)), normal, sub);
  v = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7F)), v, nan_bits);
  const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x80)), 24);
  return _mm512_castsi512_ps(_mm512_or_si512(v, sign));
}

QF_AVX512 inline __m512i nan_bits() {
  return _mm512_set1_epi32(static_cast<int>(f32_bits(e4m3_table()[kE4m3NanCode]) & 0x7FFFFFFFu));
}

QF_AVX512 inline __m512i load_codes16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

QF_AVX512 inline void store_codes16(uint8_t* out, __m512i c) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(c));
}

QF_AVX512 inline __m512 load16(Dense kind, const unsigned char* p) {
  if (kind == Dense::kF32) return _mm512_loadu_ps(p);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if (kind == Dense::kF16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// 16 floats -> 16 halves of `kind` (F16 or BF16), rounded as cpu/half.hpp does.
QF_AVX512 inline __m256i narrow16(Dense kind, __m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  if (kind == Dense::kBF16) {
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF)), lsb), 16);
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
  }
  const __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i sign16 = _mm256_and_si256(_mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16)),
                                          _mm256_set1_epi16(static_cast<int16_t>(0x8000)));
  return _mm256_mask_blend_epi16(nan, h, _mm256_or_si256(sign16, _mm256_set1_epi16(0x7E00)));
}

QF_AVX512 inline void store16(Dense kind, unsigned char* p, __m512 v) {
  if (kind == Dense::kF32) {
    _mm512_storeu_ps(p, v);
  } else {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), narrow16(kind, v));
  }
}

}  // namespace

QF_AVX512 void encode(const float* x, int64_t n, uint8_t* out) noexcept {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) store_codes16(out + i, encode16(_mm512_loadu_ps(x + i)));
  scalar::encode(x + i, n - i, out + i);
}

QF_AVX512 void decode(const uint8_t* codes, int64_t n, float* out) noexcept {
  const __m512i nan = nan_bits();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, decode16(load_codes16(codes + i), nan));
  scalar::decode(codes + i, n - i, out + i);
}

QF_AVX512 uint32_t amax_bits(Dense kind, const void* src, int64_t n) noexcept {
  const auto* p = static_cast<const unsigned char*>(src);
  const int64_t size = dense_size(kind);
  int64_t i = 0;
  if (kind != Dense::kF32) {  // 16-bit lanes, as the AVX2 kernel does
    const __m512i mask16 = _mm512_set1_epi16(0x7FFF);
    __m512i h0 = _mm512_setzero_si512();
    for (; i + 32 <= n; i += 32) {
      h0 = _mm512_max_epu16(h0, _mm512_and_si512(_mm512_loadu_si512(p + 2 * i), mask16));
    }
    alignas(64) uint16_t lanes[32];
    _mm512_store_si512(lanes, h0);
    uint16_t h = 0;
    for (uint16_t v : lanes) h = std::max(h, v);
    const float widened = kind == Dense::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
    return std::max(f32_bits(widened), scalar::amax_bits(kind, p + i * size, n - i));
  }
  const __m512i mask = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i m0 = _mm512_setzero_si512(), m1 = m0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_epu32(m0,
                          _mm512_and_si512(_mm512_castps_si512(load16(kind, p + i * size)), mask));
    m1 = _mm512_max_epu32(
        m1, _mm512_and_si512(_mm512_castps_si512(load16(kind, p + (i + 16) * size)), mask));
  }
  const uint32_t m = _mm512_reduce_max_epu32(_mm512_max_epu32(m0, m1));
  return std::max(m, scalar::amax_bits(kind, p + i * size, n - i));
}

QF_AVX512 void encode_scaled(Dense kind, const void* src, int64_t n, float scale,
                             uint8_t* out) noexcept {
  const auto* p = static_cast<const unsigned char*>(src);
  const int64_t size = dense_size(kind);
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    store_codes16(out + i, encode16(_mm512_mul_ps(load16(kind, p + i * size), s)));
  }
  scalar::encode_scaled(kind, p + i * size, n - i, scale, out + i);
}

QF_AVX512 void decode_scaled(const uint8_t* codes, int64_t n, float scale, Dense kind,
                             void* out) noexcept {
  auto* p = static_cast<unsigned char*>(out);
  const int64_t size = dense_size(kind);
  const __m512i nan = nan_bits();
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    store16(kind, p + i * size, _mm512_mul_ps(decode16(load_codes16(codes + i), nan), s));
  }
  scalar::decode_scaled(codes + i, n - i, scale, kind, p + i * size);
}

QF_AVX512 void round_trip_div(float* x, int64_t n, float s) noexcept {
  const __m512i nan = nan_bits();
  const __m512 sv = _mm512_set1_ps(s);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 q = _mm512_div_ps(_mm512_loadu_ps(x + i), sv);
    _mm512_storeu_ps(x + i, _mm512_mul_ps(decode16(encode16(q), nan), sv));
  }
  scalar::round_trip_div(x + i, n - i, s);
}

QF_AVX512 void round_trip_mul(const float* x, int64_t n, float m, float* out) noexcept {
  const __m512i nan = nan_bits();
  const __m512 mv = _mm512_set1_ps(m);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, decode16(encode16(_mm512_mul_ps(_mm512_loadu_ps(x + i), mv)), nan));
  }
  scalar::round_trip_mul(x + i, n - i, m, out + i);
}

// The AVX2 kernel's blocking (kernels_avx2.cpp) with two 16-lane vectors per 32-row block and
// four tokens at a time (eight independent sums).
QF_AVX512 void linear_accumulate(const CodeMatrix& w, const float* x, int64_t tokens,
                                 int64_t row_begin, int64_t row_end, float* y, int64_t ldy) {
  constexpr int64_t kRows = 32, kChunk = 256;
  std::vector<float> rows(static_cast<size_t>(kRows * kChunk));
  std::vector<float> panel(static_cast<size_t>(kChunk * kRows));
  std::vector<float> acc(static_cast<size_t>(std::max<int64_t>(tokens, 1) * kRows));
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRows) {
    const int64_t live = std::min(kRows, row_end - r0);
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t k0 = 0; k0 < w.cols; k0 += kChunk) {
      const int64_t kn = std::min(kChunk, w.cols - k0);
      const int64_t kpad = (kn + 7) / 8 * 8;
      for (int64_t l = 0; l < kRows; ++l) {
        float* dst = rows.data() + l * kChunk;
        if (l >= live) {
          std::fill(dst, dst + kpad, 0.0f);
          continue;
        }
        const int64_t o = r0 + l;
        // 32 rows a weight row apart are more streams than the hardware prefetcher follows:
        // fetch this row's next chunk of codes while this one is decoded.
        const uint8_t* next = w.codes + o * w.cols + k0 + kChunk;
        for (int64_t b = 0; b < kChunk && k0 + kChunk + b < w.cols; b += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(next + b), _MM_HINT_T0);
        }
        for (int64_t c = k0; c < k0 + kn;) {
          const int64_t end = std::min(k0 + kn, (c / w.bn + 1) * w.bn);
          decode_scaled(w.codes + o * w.cols + c, end - c, w.scale(o, c), Dense::kF32,
                        dst + (c - k0));
          c = end;
        }
        std::fill(dst + kn, dst + kpad, 0.0f);
      }
      for (int64_t kb = 0; kb < kpad; kb += 8) {
        for (int64_t rb = 0; rb < kRows; rb += 8) {
          transpose8(rows.data() + rb * kChunk + kb, kChunk, panel.data() + kb * kRows + rb, kRows);
        }
      }
      int64_t t = 0;
      for (; t + 4 <= tokens; t += 4) {
        float* a = acc.data() + t * kRows;
        __m512 s[4][2];
        for (int j = 0; j < 4; ++j) {
          s[j][0] = _mm512_loadu_ps(a + j * kRows);
          s[j][1] = _mm512_loadu_ps(a + j * kRows + 16);
        }
        const float* x0 = x + t * w.cols + k0;
        for (int64_t k = 0; k < kn; ++k) {
          const float* pk = panel.data() + k * kRows;
          const __m512 w0 = _mm512_loadu_ps(pk), w1 = _mm512_loadu_ps(pk + 16);
          for (int j = 0; j < 4; ++j) {
            const __m512 b = _mm512_set1_ps(x0[j * w.cols + k]);
            s[j][0] = _mm512_add_ps(s[j][0], _mm512_mul_ps(b, w0));
            s[j][1] = _mm512_add_ps(s[j][1], _mm512_mul_ps(b, w1));
          }
        }
        for (int j = 0; j < 4; ++j) {
          _mm512_storeu_ps(a + j * kRows, s[j][0]);
          _mm512_storeu_ps(a + j * kRows + 16, s[j][1]);
        }
      }
      for (; t < tokens; ++t) {
        float* a = acc.data() + t * kRows;
        __m512 s0 = _mm512_loadu_ps(a), s1 = _mm512_loadu_ps(a + 16);
        const float* x0 = x + t * w.cols + k0;
        for (int64_t k = 0; k < kn; ++k) {
          const float* pk = panel.data() + k * kRows;
          const __m512 b = _mm512_set1_ps(x0[k]);
          s0 = _mm512_add_ps(s0, _mm512_mul_ps(b, _mm512_loadu_ps(pk)));
          s1 = _mm512_add_ps(s1, _mm512_mul_ps(b, _mm512_loadu_ps(pk + 16)));
        }
        _mm512_storeu_ps(a, s0);
        _mm512_storeu_ps(a + 16, s1);
      }
    }
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t l = 0; l < live; ++l)
        y[t * ldy + r0 + l] = acc[static_cast<size_t>(t * kRows + l)];
    }
  }
}

}  // namespace qforge::plugins::fp8::cpu::avx512
#endif
