// AVX2 (+F16C) bodies of cpu/kernels.hpp, 8 floats per vector. Bit-identical to the scalar path:
// note [fp8 vector e4m3] below says why each step gives e4m3_from_float's bytes.
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

#define QF_AVX2 __attribute__((target("avx2,f16c")))

namespace qforge::plugins::fp8::cpu::avx2 {
namespace {

// Note [fp8 vector e4m3]. Per lane, with a = |x| bits:
//  * a >= 2^-6 (a >= 0x3C800000): e4m3_from_float keeps 3 mantissa bits, rounding a / 2^20 to
//    nearest even: (a + 0x7FFFF + ((a >> 20) & 1)) >> 20, then rebiases the exponent (-120 << 3).
//  * a < 2^-6: the code is round(|x| * 2^9) to nearest even. |x| * 512 is exact (a power-of-two
//    product that cannot overflow), and _mm256_round_ps with an explicit nearest-even immediate
//    does not depend on MXCSR; float32 subnormals (and DAZ/FTZ flushing) all give code 0 as the
//    scalar's exponent == 0 branch does.
//  * a >= 448 (0x43E00000, incl. Inf) -> 0x7E; NaN (a > 0x7F800000) -> 0x7F; sign bit on top.
// Decode builds the float from the code: (mag << 20) + (120 << 23) for normal codes, mag * 2^-9
// (exact) for the 8 subnormal ones, the reference table's NaN for 0x7F.
QF_AVX2 inline __m256i encode8(__m256 v) {
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i a = _mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(bits, 24), _mm256_set1_epi32(0x80));
  // Clamping at 448 first makes the saturation the normal path's (448 encodes as 0x7E).
  const __m256i as = _mm256_min_epu32(a, _mm256_set1_epi32(0x43E00000));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(as, 20), _mm256_set1_epi32(1));
  const __m256i normal = _mm256_sub_epi32(
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(as, _mm256_set1_epi32(0x7FFFF)), lsb),
                        20),
      _mm256_set1_epi32(120 << 3));
  const __m256 scaled = _mm256_mul_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(512.0f));
  const __m256i sub =
      _mm256_cvttps_epi32(_mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  __m256i code =
      _mm256_blendv_epi8(sub, normal, _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x3C7FFFFF)));
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(kE4m3NanCode),
                            _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000)));
  return _mm256_or_si256(code, sign);
}

// Codes in dword lanes -> their floats; nan_bits: the table's positive NaN.
QF_AVX2 inline __m256 decode8(__m256i c, __m256i nan_bits) {
  const __m256i mag = _mm256_and_si256(c, _mm256_set1_epi32(0x7F));
  const __m256i normal = _mm256_add_epi32(_mm256_slli_epi32(mag, 20), _mm256_set1_epi32(120 << 23));
  const __m256i sub =
      _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(mag), _mm256_set1_ps(1.0f / 512.0f)));
  __m256i v = _mm256_blendv_epi8(normal, sub, _mm256_cmpgt_epi32(_mm256_set1_epi32(8), mag));
  v = _mm256_blendv_epi8(v, nan_bits, _mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7F)));
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(c, _mm256_set1_epi32(0x80)), 24);
  return _mm256_castsi256_ps(_mm256_or_si256(v, sign));
}

QF_AVX2 inline __m256i nan_bits() {
  return _mm256_set1_epi32(static_cast<int>(f32_bits(e4m3_table()[kE4m3NanCode]) & 0x7FFFFFFFu));
}

QF_AVX2 inline __m256i load_codes8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// 32 dword codes -> 32 bytes in order.
QF_AVX2 inline void store_codes32(uint8_t* out, __m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(a, b), _mm256_packus_epi32(c, d));
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(out),
      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

QF_AVX2 inline __m256 load8(Dense kind, const unsigned char* p) {
  if (kind == Dense::kF32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (kind == Dense::kF16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// 8 floats -> 8 halves of `kind` (F16 or BF16), rounded as cpu/half.hpp does.
QF_AVX2 inline __m128i narrow8(Dense kind, __m256 v) {
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  if (kind == Dense::kBF16) {
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)), lsb), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    const __m256i h = _mm256_blendv_epi8(rounded, quiet, nan);
    return _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  }
  // vcvtps2ph rounds like f32_to_f16 (nearest even, overflow to Inf, exact subnormals); only
  // its NaN keeps payload bits, where f32_to_f16 writes sign | 0x7E00.
  const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m128i nan16 =
      _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
  const __m256i sign32 = _mm256_srai_epi32(bits, 16);
  const __m128i sign16 = _mm_and_si128(
      _mm_packs_epi32(_mm256_castsi256_si128(sign32), _mm256_extracti128_si256(sign32, 1)),
      _mm_set1_epi16(static_cast<int16_t>(0x8000)));
  return _mm_blendv_epi8(h, _mm_or_si128(sign16, _mm_set1_epi16(0x7E00)), nan16);
}

QF_AVX2 inline void store8(Dense kind, unsigned char* p, __m256 v) {
  if (kind == Dense::kF32) {
    _mm256_storeu_ps(reinterpret_cast<float*>(p), v);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow8(kind, v));
  }
}

}  // namespace

QF_AVX2 void encode(const float* x, int64_t n, uint8_t* out) noexcept {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    store_codes32(out + i, encode8(_mm256_loadu_ps(x + i)), encode8(_mm256_loadu_ps(x + i + 8)),
                  encode8(_mm256_loadu_ps(x + i + 16)), encode8(_mm256_loadu_ps(x + i + 24)));
  }
  scalar::encode(x + i, n - i, out + i);
}

QF_AVX2 void decode(const uint8_t* codes, int64_t n, float* out) noexcept {
  const __m256i nan = nan_bits();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, decode8(load_codes8(codes + i), nan));
  scalar::decode(codes + i, n - i, out + i);
}

QF_AVX2 uint32_t amax_bits(Dense kind, const void* src, int64_t n) noexcept {
  const auto* p = static_cast<const unsigned char*>(src);
  const int64_t size = dense_size(kind);
  int64_t i = 0;
  if (kind != Dense::kF32) {
    // F16 and BF16 magnitudes order as their 15 low bits do (Inf/NaN on top), so the maximum
    // is taken on 16-bit lanes and widened once.
    const __m256i mask16 = _mm256_set1_epi16(0x7FFF);
    __m256i h0 = _mm256_setzero_si256(), h1 = h0;
    for (; i + 32 <= n; i += 32) {
      const auto* q = reinterpret_cast<const __m256i*>(p + 2 * i);
      h0 = _mm256_max_epu16(h0, _mm256_and_si256(_mm256_loadu_si256(q), mask16));
      h1 = _mm256_max_epu16(h1, _mm256_and_si256(_mm256_loadu_si256(q + 1), mask16));
    }
    alignas(32) uint16_t lanes[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_max_epu16(h0, h1));
    uint16_t h = 0;
    for (uint16_t v : lanes) h = std::max(h, v);
    const float widened = kind == Dense::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
    return std::max(f32_bits(widened), scalar::amax_bits(kind, p + i * size, n - i));
  }
  const __m256i mask = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i m0 = _mm256_setzero_si256(), m1 = m0;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_epu32(m0,
                          _mm256_and_si256(_mm256_castps_si256(load8(kind, p + i * size)), mask));
    m1 = _mm256_max_epu32(
        m1, _mm256_and_si256(_mm256_castps_si256(load8(kind, p + (i + 8) * size)), mask));
  }
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_max_epu32(m0, m1));
  uint32_t m = scalar::amax_bits(kind, p + i * size, n - i);
  for (uint32_t v : lanes) m = std::max(m, v);
  return m;
}

QF_AVX2 void encode_scaled(Dense kind, const void* src, int64_t n, float scale,
                           uint8_t* out) noexcept {
  const auto* p = static_cast<const unsigned char*>(src);
  const int64_t size = dense_size(kind);
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const unsigned char* q = p + i * size;
    store_codes32(out + i, encode8(_mm256_mul_ps(load8(kind, q), s)),
                  encode8(_mm256_mul_ps(load8(kind, q + 8 * size), s)),
                  encode8(_mm256_mul_ps(load8(kind, q + 16 * size), s)),
                  encode8(_mm256_mul_ps(load8(kind, q + 24 * size), s)));
  }
  scalar::encode_scaled(kind, p + i * size, n - i, scale, out + i);
}

QF_AVX2 void decode_scaled(const uint8_t* codes, int64_t n, float scale, Dense kind,
                           void* out) noexcept {
  auto* p = static_cast<unsigned char*>(out);
  const int64_t size = dense_size(kind);
  const __m256i nan = nan_bits();
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    store8(kind, p + i * size, _mm256_mul_ps(decode8(load_codes8(codes + i), nan), s));
  }
  scalar::decode_scaled(codes + i, n - i, scale, kind, p + i * size);
}

QF_AVX2 void round_trip_div(float* x, int64_t n, float s) noexcept {
  const __m256i nan = nan_bits();
  const __m256 sv = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + i), sv);
    _mm256_storeu_ps(x + i, _mm256_mul_ps(decode8(encode8(q), nan), sv));
  }
  scalar::round_trip_div(x + i, n - i, s);
}

QF_AVX2 void round_trip_mul(const float* x, int64_t n, float m, float* out) noexcept {
  const __m256i nan = nan_bits();
  const __m256 mv = _mm256_set1_ps(m);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, decode8(encode8(_mm256_mul_ps(_mm256_loadu_ps(x + i), mv)), nan));
  }
  scalar::round_trip_mul(x + i, n - i, m, out + i);
}

// Rows go in blocks of 32 (four vectors of 8 output rows) so four independent sums per token
// hide the add latency; k in chunks of 256 so the decoded block (rows x chunk) and its transpose
// (chunk x rows, one vector per k) stay in L1/L2. Each lane sums its row in k order, as the scalar
// path does; padding rows past row_end decode as zeros and are never stored.
QF_AVX2 void linear_accumulate(const CodeMatrix& w, const float* x, int64_t tokens,
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
        for (int64_t c = k0; c < k0 + kn;) {  // one call per scale tile the chunk touches
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
      for (; t + 2 <= tokens; t += 2) {
        float* a0 = acc.data() + t * kRows;
        float* a1 = a0 + kRows;
        __m256 s00 = _mm256_loadu_ps(a0), s01 = _mm256_loadu_ps(a0 + 8);
        __m256 s02 = _mm256_loadu_ps(a0 + 16), s03 = _mm256_loadu_ps(a0 + 24);
        __m256 s10 = _mm256_loadu_ps(a1), s11 = _mm256_loadu_ps(a1 + 8);
        __m256 s12 = _mm256_loadu_ps(a1 + 16), s13 = _mm256_loadu_ps(a1 + 24);
        const float* x0 = x + t * w.cols + k0;
        const float* x1 = x0 + w.cols;
        for (int64_t k = 0; k < kn; ++k) {
          const float* pk = panel.data() + k * kRows;
          const __m256 w0 = _mm256_loadu_ps(pk), w1 = _mm256_loadu_ps(pk + 8);
          const __m256 w2 = _mm256_loadu_ps(pk + 16), w3 = _mm256_loadu_ps(pk + 24);
          const __m256 b0 = _mm256_broadcast_ss(x0 + k), b1 = _mm256_broadcast_ss(x1 + k);
          s00 = _mm256_add_ps(s00, _mm256_mul_ps(b0, w0));
          s01 = _mm256_add_ps(s01, _mm256_mul_ps(b0, w1));
          s02 = _mm256_add_ps(s02, _mm256_mul_ps(b0, w2));
          s03 = _mm256_add_ps(s03, _mm256_mul_ps(b0, w3));
          s10 = _mm256_add_ps(s10, _mm256_mul_ps(b1, w0));
          s11 = _mm256_add_ps(s11, _mm256_mul_ps(b1, w1));
          s12 = _mm256_add_ps(s12, _mm256_mul_ps(b1, w2));
          s13 = _mm256_add_ps(s13, _mm256_mul_ps(b1, w3));
        }
        _mm256_storeu_ps(a0, s00), _mm256_storeu_ps(a0 + 8, s01);
        _mm256_storeu_ps(a0 + 16, s02), _mm256_storeu_ps(a0 + 24, s03);
        _mm256_storeu_ps(a1, s10), _mm256_storeu_ps(a1 + 8, s11);
        _mm256_storeu_ps(a1 + 16, s12), _mm256_storeu_ps(a1 + 24, s13);
      }
      for (; t < tokens; ++t) {
        float* a0 = acc.data() + t * kRows;
        __m256 s0 = _mm256_loadu_ps(a0), s1 = _mm256_loadu_ps(a0 + 8);
        __m256 s2 = _mm256_loadu_ps(a0 + 16), s3 = _mm256_loadu_ps(a0 + 24);
        const float* x0 = x + t * w.cols + k0;
        for (int64_t k = 0; k < kn; ++k) {
          const float* pk = panel.data() + k * kRows;
          const __m256 b = _mm256_broadcast_ss(x0 + k);
          s0 = _mm256_add_ps(s0, _mm256_mul_ps(b, _mm256_loadu_ps(pk)));
          s1 = _mm256_add_ps(s1, _mm256_mul_ps(b, _mm256_loadu_ps(pk + 8)));
          s2 = _mm256_add_ps(s2, _mm256_mul_ps(b, _mm256_loadu_ps(pk + 16)));
          s3 = _mm256_add_ps(s3, _mm256_mul_ps(b, _mm256_loadu_ps(pk + 24)));
        }
        _mm256_storeu_ps(a0, s0), _mm256_storeu_ps(a0 + 8, s1);
        _mm256_storeu_ps(a0 + 16, s2), _mm256_storeu_ps(a0 + 24, s3);
      }
    }
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t l = 0; l < live; ++l)
        y[t * ldy + r0 + l] = acc[static_cast<size_t>(t * kRows + l)];
    }
  }
}

}  // namespace qforge::plugins::fp8::cpu::avx2
#endif
