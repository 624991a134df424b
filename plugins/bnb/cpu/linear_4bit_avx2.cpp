// AVX2 + FMA kernels: 4-bit GEMV / GEMM with on-the-fly decode, and block dequantization.
//
// Decode: 8 packed bytes widen to 8 int32 lanes; vpermps looks each nibble up in two 8-entry
// halves of the codebook and a blend on the nibble's bit 3 (shifted into the sign bit) picks
// the half. See linear_4bit_avx512.cpp for the x permutation and Note [target attributes].
// GCC 12's AVX-512 intrinsics start from self-initialized "undefined" vectors (__Y = __Y),
// which -Wuninitialized flags once they are inlined here; the warning's location is inside
// the header, so it is silenced for the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>

#include "cpu/kernels.hpp"

#define QF_AVX2 __attribute__((target("avx2,fma")))

namespace qforge::plugins::bnb::cpu {
namespace {

// The weights of the 8 bytes at q: H pairs with the even elements, L with the odd ones.
#define QF_DECODE8_256(q, lo_lut, hi_lut, H, L)                                            \
  const __m256i qf_i_##H =                                                                 \
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));          \
  const __m256i qf_h_##H = _mm256_srli_epi32(qf_i_##H, 4);                                 \
  const __m256 H = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo_lut, qf_h_##H),            \
                                    _mm256_permutevar8x32_ps(hi_lut, qf_h_##H),            \
                                    _mm256_castsi256_ps(_mm256_slli_epi32(qf_h_##H, 28))); \
  const __m256 L = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo_lut, qf_i_##H),            \
                                    _mm256_permutevar8x32_ps(hi_lut, qf_i_##H),            \
                                    _mm256_castsi256_ps(_mm256_slli_epi32(qf_i_##H, 28)))

QF_AVX2 float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// R weight rows against one row of x, sharing each x load (see linear_4bit_avx512.cpp).
template <int R>
QF_AVX2 void gemv_rows_avx2(const Weight4& w, const float* xp, const float* bias, float* y,
                            int64_t r) {
  const __m256 lo = _mm256_loadu_ps(w.code);
  const __m256 hi = _mm256_loadu_ps(w.code + 8);
  const int64_t blocks = w.in / kBlock;
  const uint8_t* rows[R];
  __m256 acc[R];
#pragma GCC unroll 2
  for (int i = 0; i < R; ++i) {
    rows[i] = w.packed + (r + i) * (w.in / 2);
    acc[i] = _mm256_setzero_ps();
  }
  for (int64_t j = 0; j < blocks; ++j) {
    __m256 s[R];
    __m256 t[R];
#pragma GCC unroll 2
    for (int i = 0; i < R; ++i) {
      s[i] = _mm256_setzero_ps();
      t[i] = _mm256_setzero_ps();
      // The same bytes of the next group of R rows (see gemv_words_avx512).
      _mm_prefetch(reinterpret_cast<const char*>(rows[i] + R * (w.in / 2) + j * 32), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int part = 0; part < 4; ++part) {
      const __m256 xh = _mm256_loadu_ps(xp + j * kBlock + part * 8);
      const __m256 xl = _mm256_loadu_ps(xp + j * kBlock + 32 + part * 8);
#pragma GCC unroll 2
      for (int i = 0; i < R; ++i) {
        QF_DECODE8_256(rows[i] + j * 32 + part * 8, lo, hi, h, l);
        s[i] = _mm256_fmadd_ps(h, xh, s[i]);
        t[i] = _mm256_fmadd_ps(l, xl, t[i]);
      }
    }
#pragma GCC unroll 2
    for (int i = 0; i < R; ++i) {
      acc[i] = _mm256_fmadd_ps(_mm256_add_ps(s[i], t[i]),
                               _mm256_set1_ps(w.absmax.at((r + i) * blocks + j)), acc[i]);
    }
  }
#pragma GCC unroll 2
  for (int i = 0; i < R; ++i) {
    y[r + i] = hsum256(acc[i]) + (bias != nullptr ? bias[r + i] : 0.0f);
  }
}

QF_AVX2 void gemv_avx2(const Weight4& w, const float* xp, const float* bias, float* y,
                       int64_t row_begin, int64_t row_end) {
  int64_t r = row_begin;
  for (; r + 2 <= row_end; r += 2) gemv_rows_avx2<2>(w, xp, bias, y, r);
  for (; r < row_end; ++r) gemv_rows_avx2<1>(w, xp, bias, y, r);
}

template <int MT>
QF_AVX2 void gemm_tile_avx2(const Weight4& w, const float* xp, int64_t ldx, float* y, int64_t ldy,
                            int64_t r, float bias_r) {
  const __m256 lo = _mm256_loadu_ps(w.code);
  const __m256 hi = _mm256_loadu_ps(w.code + 8);
  const int64_t blocks = w.in / kBlock;
  const uint8_t* row = w.packed + r * (w.in / 2);
  const int64_t b0 = r * blocks;
  __m256 a[MT];
  __m256 b[MT];
#pragma GCC unroll 4
  for (int i = 0; i < MT; ++i) {
    a[i] = _mm256_setzero_ps();
    b[i] = _mm256_setzero_ps();
  }
  for (int64_t j = 0; j < blocks; ++j) {
    const __m256 scale = _mm256_set1_ps(w.absmax.at(b0 + j));
#pragma GCC unroll 4
    for (int part = 0; part < 4; ++part) {
      QF_DECODE8_256(row + j * 32 + part * 8, lo, hi, h, l);
      const __m256 wh = _mm256_mul_ps(h, scale);
      const __m256 wl = _mm256_mul_ps(l, scale);
#pragma GCC unroll 4
      for (int i = 0; i < MT; ++i) {
        const float* xb = xp + i * ldx + j * kBlock + part * 8;
        a[i] = _mm256_fmadd_ps(wh, _mm256_loadu_ps(xb), a[i]);
        b[i] = _mm256_fmadd_ps(wl, _mm256_loadu_ps(xb + 32), b[i]);
      }
    }
  }
  for (int i = 0; i < MT; ++i) y[i * ldy + r] = hsum256(_mm256_add_ps(a[i], b[i])) + bias_r;
}

}  // namespace

QF_AVX2 void linear_4bit_avx2(const Weight4& w, const float* xperm, int64_t ldx, int64_t rows,
                              const float* bias, float* y, int64_t ldy, int64_t row_begin,
                              int64_t row_end) noexcept {
  if (rows == 1) {
    gemv_avx2(w, xperm, bias, y, row_begin, row_end);
    return;
  }
  constexpr int64_t kRowChunk = 32;
  for (int64_t m0 = 0; m0 < rows; m0 += kRowChunk) {
    const int64_t m1 = std::min(rows, m0 + kRowChunk);
    for (int64_t r = row_begin; r < row_end; ++r) {
      const float bias_r = bias != nullptr ? bias[r] : 0.0f;
      int64_t m = m0;
      for (; m + 4 <= m1; m += 4) {
        gemm_tile_avx2<4>(w, xperm + m * ldx, ldx, y + m * ldy, ldy, r, bias_r);
      }
      switch (m1 - m) {
        case 3:
          gemm_tile_avx2<3>(w, xperm + m * ldx, ldx, y + m * ldy, ldy, r, bias_r);
          break;
        case 2:
          gemm_tile_avx2<2>(w, xperm + m * ldx, ldx, y + m * ldy, ldy, r, bias_r);
          break;
        case 1:
          gemm_tile_avx2<1>(w, xperm + m * ldx, ldx, y + m * ldy, ldy, r, bias_r);
          break;
        default:
          break;
      }
    }
  }
}

QF_AVX2 void dequantize_blocks_avx2(const Weight4& w, int64_t block_begin, int64_t block_end,
                                    float* out) noexcept {
  const __m256 lo = _mm256_loadu_ps(w.code);
  const __m256 hi = _mm256_loadu_ps(w.code + 8);
  for (int64_t b = block_begin; b < block_end; ++b) {
    const __m256 scale = _mm256_set1_ps(w.absmax.at(b));
    float* dst = out + (b - block_begin) * kBlock;
    for (int part = 0; part < 4; ++part) {
      QF_DECODE8_256(w.packed + b * 32 + part * 8, lo, hi, h, l);
      // unpack interleaves within 128-bit lanes; the lane permutes restore element order.
      const __m256 ab = _mm256_unpacklo_ps(h, l);
      const __m256 cd = _mm256_unpackhi_ps(h, l);
      _mm256_storeu_ps(dst + part * 16, _mm256_mul_ps(_mm256_permute2f128_ps(ab, cd, 0x20), scale));
      _mm256_storeu_ps(dst + part * 16 + 8,
                       _mm256_mul_ps(_mm256_permute2f128_ps(ab, cd, 0x31), scale));
    }
  }
}

}  // namespace qforge::plugins::bnb::cpu
