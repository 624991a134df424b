// AVX-512 kernels: 4-bit GEMV / GEMM with on-the-fly decode, and block dequantization.
//
// Decode: 16 packed bytes widen to 16 int32 lanes; vpermps (_mm512_permutexvar_ps) looks the
// high nibble (after a shift) and the low nibble (the permute reads only the index's low 4
// bits) up in the 16-entry codebook held in one register. The two nibbles of byte j pair
// with x[2j] and x[2j+1], which is why x arrives permuted (prepare_x, XLayout::kBlock64).
//
// Note [target attributes]: only functions marked QF_AVX512 may use these intrinsics; helper
// lambdas would not inherit the attribute, so the block step is a macro. Nothing from a
// header is instantiated with AVX-512 enabled, so no AVX-512 code can leak into the scalar
// path through a shared inline function.
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

#define QF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

namespace qforge::plugins::bnb::cpu {
namespace {

// Decodes the 32 bytes at q into the weights paired with xp[0..15] (H0), xp[16..31] (H1),
// xp[32..47] (L0) and xp[48..63] (L1).
#define QF_DECODE_BLOCK_512(q, lut, H0, H1, L0, L1)                                      \
  const __m512i qf_i0 =                                                                  \
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));        \
  const __m512i qf_i1 =                                                                  \
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>((q) + 16))); \
  const __m512 H0 = _mm512_permutexvar_ps(_mm512_srli_epi32(qf_i0, 4), lut);             \
  const __m512 H1 = _mm512_permutexvar_ps(_mm512_srli_epi32(qf_i1, 4), lut);             \
  const __m512 L0 = _mm512_permutexvar_ps(qf_i0, lut);                                   \
  const __m512 L1 = _mm512_permutexvar_ps(qf_i1, lut)

// R weight rows against one row of x: every x vector is loaded once for the R rows (x is
// float32, eight times the bytes of the codes it pairs with, so sharing its loads is what
// keeps the loop on the weight stream). Per row and block: the products are summed in two
// halves, then scaled once by the block's absmax.
template <int R>
QF_AVX512 void gemv_rows_avx512(const Weight4& w, const float* xp, const float* bias, float* y,
                                int64_t r) {
  const __m512 lut = _mm512_loadu_ps(w.code);
  const int64_t blocks = w.in / kBlock;
  const uint8_t* rows[R];
  __m512 acc[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    rows[i] = w.packed + (r + i) * (w.in / 2);
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t j = 0; j < blocks; ++j) {
    const float* xb = xp + j * kBlock;
    const __m512 x0 = _mm512_loadu_ps(xb);
    const __m512 x1 = _mm512_loadu_ps(xb + 16);
    const __m512 x2 = _mm512_loadu_ps(xb + 32);
    const __m512 x3 = _mm512_loadu_ps(xb + 48);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      QF_DECODE_BLOCK_512(rows[i] + j * 32, lut, h0, h1, l0, l1);
      __m512 s = _mm512_mul_ps(h0, x0);
      __m512 t = _mm512_mul_ps(l0, x2);
      s = _mm512_fmadd_ps(h1, x1, s);
      t = _mm512_fmadd_ps(l1, x3, t);
      acc[i] = _mm512_fmadd_ps(_mm512_add_ps(s, t),
                               _mm512_set1_ps(w.absmax.at((r + i) * blocks + j)), acc[i]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    y[r + i] = _mm512_reduce_add_ps(acc[i]) + (bias != nullptr ? bias[r + i] : 0.0f);
  }
}

QF_AVX512 void gemv_avx512(const Weight4& w, const float* xp, const float* bias, float* y,
                           int64_t row_begin, int64_t row_end) {
  int64_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) gemv_rows_avx512<4>(w, xp, bias, y, r);
  for (; r < row_end; ++r) gemv_rows_avx512<1>(w, xp, bias, y, r);
}

// GEMV on whole dwords: 64 code bytes (two blocks) load as 16 dword lanes with no widening
// shuffle; shifting by 4k brings nibble k of every dword to the bits vpermps reads. Lanes 0-7
// come from the first block and 8-15 from the second, so the scale is a two-valued vector.
// x is in the kWord128 layout (prepare_x).
template <int R>
QF_AVX512 void gemv_words_avx512(const Weight4& w, const float* xq, const float* bias, float* y,
                                 int64_t r) {
  const __m512 lut = _mm512_loadu_ps(w.code);
  const int64_t chunks = w.in / (2 * kBlock);
  const int64_t blocks = w.in / kBlock;
  const uint8_t* rows[R];
  __m512 acc[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    rows[i] = w.packed + (r + i) * (w.in / 2);
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < chunks; ++c) {
    const float* xc = xq + c * 2 * kBlock;
    __m512i v[R];
    __m512 s[R];
    __m512 t[R];
    const __m512 xa0 = _mm512_loadu_ps(xc);
    const __m512 xb0 = _mm512_loadu_ps(xc + 16);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      // The same bytes of the next group of R rows: R streams 2 KiB apart defeat the hardware
      // prefetcher often enough that the loads below waited on DRAM.
      _mm_prefetch(reinterpret_cast<const char*>(rows[i] + R * (w.in / 2) + c * 64), _MM_HINT_T0);
      v[i] = _mm512_loadu_si512(rows[i] + c * 64);
      s[i] = _mm512_mul_ps(_mm512_permutexvar_ps(v[i], lut), xa0);
      t[i] = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v[i], 4), lut), xb0);
    }
#pragma GCC unroll 3
    for (int k = 1; k < 4; ++k) {
      const __m512 xa = _mm512_loadu_ps(xc + 32 * k);
      const __m512 xb = _mm512_loadu_ps(xc + 32 * k + 16);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        s[i] =
            _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v[i], 8 * k), lut), xa, s[i]);
        t[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v[i], 8 * k + 4), lut), xb,
                               t[i]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const int64_t b = (r + i) * blocks + 2 * c;
      const __m512 scale =
          _mm512_insertf32x8(_mm512_set1_ps(w.absmax.at(b)), _mm256_set1_ps(w.absmax.at(b + 1)), 1);
      acc[i] = _mm512_fmadd_ps(_mm512_add_ps(s[i], t[i]), scale, acc[i]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    y[r + i] = _mm512_reduce_add_ps(acc[i]) + (bias != nullptr ? bias[r + i] : 0.0f);
  }
}

// MT rows of x against R weight rows from r, over blocks [j0, j1): each block is decoded and
// scaled once, then feeds MT pairs of accumulators (two per x row, so a block's four FMAs into
// one row form two short chains). The running sums live in acc[(k * MT + i)] between k-chunks
// (see linear_4bit_avx512); R = 2 for small MT keeps enough independent chains in flight.
template <int MT, int R>
QF_AVX512 void gemm_rows_avx512(const Weight4& w, const float* xp, int64_t ldx, int64_t r,
                                int64_t j0, int64_t j1, __m512* acc) {
  const __m512 lut = _mm512_loadu_ps(w.code);
  const int64_t blocks = w.in / kBlock;
  __m512 a[R][MT];
  __m512 b[R][MT];
#pragma GCC unroll 2
  for (int k = 0; k < R; ++k) {
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      a[k][i] = acc[k * MT + i];
      b[k][i] = _mm512_setzero_ps();
    }
  }
  for (int64_t j = j0; j < j1; ++j) {
#pragma GCC unroll 2
    for (int k = 0; k < R; ++k) {
      _mm_prefetch(reinterpret_cast<const char*>(w.packed + (r + k) * (w.in / 2) + j * 32 + 512),
                   _MM_HINT_T0);
      QF_DECODE_BLOCK_512(w.packed + (r + k) * (w.in / 2) + j * 32, lut, h0, h1, l0, l1);
      const __m512 scale = _mm512_set1_ps(w.absmax.at((r + k) * blocks + j));
      const __m512 wh0 = _mm512_mul_ps(h0, scale);
      const __m512 wh1 = _mm512_mul_ps(h1, scale);
      const __m512 wl0 = _mm512_mul_ps(l0, scale);
      const __m512 wl1 = _mm512_mul_ps(l1, scale);
#pragma GCC unroll 8
      for (int i = 0; i < MT; ++i) {
        const float* xb = xp + i * ldx + j * kBlock;
        a[k][i] = _mm512_fmadd_ps(wh0, _mm512_loadu_ps(xb), a[k][i]);
        b[k][i] = _mm512_fmadd_ps(wl0, _mm512_loadu_ps(xb + 32), b[k][i]);
        a[k][i] = _mm512_fmadd_ps(wh1, _mm512_loadu_ps(xb + 16), a[k][i]);
        b[k][i] = _mm512_fmadd_ps(wl1, _mm512_loadu_ps(xb + 48), b[k][i]);
      }
    }
  }
#pragma GCC unroll 2
  for (int k = 0; k < R; ++k) {
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) acc[k * MT + i] = _mm512_add_ps(a[k][i], b[k][i]);
  }
}

// Weight rows [r0, r1) against MT rows of x over blocks [j0, j1); acc holds MT sums per row.
template <int MT>
QF_AVX512 void gemm_tile_avx512(const Weight4& w, const float* xp, int64_t ldx, int64_t r0,
                                int64_t r1, int64_t j0, int64_t j1, __m512* acc) {
  constexpr int R = MT <= 4 ? 2 : 1;
  int64_t r = r0;
  for (; r + R <= r1; r += R) gemm_rows_avx512<MT, R>(w, xp, ldx, r, j0, j1, acc + (r - r0) * MT);
  for (; r < r1; ++r) gemm_rows_avx512<MT, 1>(w, xp, ldx, r, j0, j1, acc + (r - r0) * MT);
}

QF_AVX512 void gemm_tile_any(int mt, const Weight4& w, const float* xp, int64_t ldx, int64_t r0,
                             int64_t r1, int64_t j0, int64_t j1, __m512* acc) {
  switch (mt) {
    case 1:
      return gemm_tile_avx512<1>(w, xp, ldx, r0, r1, j0, j1, acc);
    case 2:
      return gemm_tile_avx512<2>(w, xp, ldx, r0, r1, j0, j1, acc);
    case 3:
      return gemm_tile_avx512<3>(w, xp, ldx, r0, r1, j0, j1, acc);
    case 4:
      return gemm_tile_avx512<4>(w, xp, ldx, r0, r1, j0, j1, acc);
    case 5:
      return gemm_tile_avx512<5>(w, xp, ldx, r0, r1, j0, j1, acc);
    case 6:
      return gemm_tile_avx512<6>(w, xp, ldx, r0, r1, j0, j1, acc);
    case 7:
      return gemm_tile_avx512<7>(w, xp, ldx, r0, r1, j0, j1, acc);
    default:
      return gemm_tile_avx512<8>(w, xp, ldx, r0, r1, j0, j1, acc);
  }
}

}  // namespace

QF_AVX512 void linear_4bit_avx512(const Weight4& w, const float* xperm, int64_t ldx, int64_t rows,
                                  const float* bias, float* y, int64_t ldy, int64_t row_begin,
                                  int64_t row_end) noexcept {
  if (rows == 1) {
    gemv_avx512(w, xperm, bias, y, row_begin, row_end);
    return;
  }
  // Blocking: x rows in tiles of at most 8 (their accumulators fill the registers), taken 16 at
  // a time; k in chunks whose slice of those x rows fits in 16 KiB of L1; weight rows in groups
  // of 8 whose running sums (one vector per weight row and x row) stay in L1 between chunks.
  // Every weight byte is read from memory once per call, x from L1. Each output's sum runs over
  // the blocks in order whatever the grouping, so the result does not depend on the row split.
  constexpr int64_t kMaxTile = 8;
  constexpr int64_t kMaxRows = 16;
  constexpr int64_t kRowGroup = 8;
  const int64_t blocks = w.in / kBlock;
  alignas(64) __m512 acc[kRowGroup * kMaxRows];
  for (int64_t m0 = 0; m0 < rows; m0 += kMaxRows) {
    const int64_t mrows = std::min(kMaxRows, rows - m0);
    // One or two x rows: whole weight rows in one pass, so each row streams sequentially (the
    // hardware prefetcher's best case); the loads of x then come from L2, which the FMAs of
    // so few rows do not outrun.
    const int64_t chunk =
        mrows <= 2 ? blocks : std::max<int64_t>(1, (16 << 10) / (mrows * kBlock * 4));
    const int64_t tiles = (mrows + kMaxTile - 1) / kMaxTile;
    const float* xm = xperm + m0 * ldx;
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowGroup) {
      const int64_t r1 = std::min(row_end, r0 + kRowGroup);
      for (auto& v : acc) v = _mm512_setzero_ps();
      for (int64_t j0 = 0; j0 < blocks; j0 += chunk) {
        const int64_t j1 = std::min(blocks, j0 + chunk);
        for (int64_t t = 0; t < tiles; ++t) {
          // Even tiles (16 -> 8 + 8, 12 -> 6 + 6) rather than a full tile and a thin one.
          const int64_t t0 = mrows * t / tiles;
          const int64_t t1 = mrows * (t + 1) / tiles;
          gemm_tile_any(static_cast<int>(t1 - t0), w, xm + t0 * ldx, ldx, r0, r1, j0, j1,
                        acc + t0 * kRowGroup);
        }
      }
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t t0 = mrows * t / tiles;
        const int64_t mt = mrows * (t + 1) / tiles - t0;
        for (int64_t r = r0; r < r1; ++r) {
          const float bias_r = bias != nullptr ? bias[r] : 0.0f;
          for (int64_t i = 0; i < mt; ++i) {
            y[(m0 + t0 + i) * ldy + r] =
                _mm512_reduce_add_ps(acc[t0 * kRowGroup + (r - r0) * mt + i]) + bias_r;
          }
        }
      }
    }
  }
}

QF_AVX512 void gemv_4bit_avx512_words(const Weight4& w, const float* xq, const float* bias,
                                      float* y, int64_t row_begin, int64_t row_end) noexcept {
  int64_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) gemv_words_avx512<4>(w, xq, bias, y, r);
  for (; r < row_end; ++r) gemv_words_avx512<1>(w, xq, bias, y, r);
}

QF_AVX512 void dequantize_blocks_avx512(const Weight4& w, int64_t block_begin, int64_t block_end,
                                        float* out) noexcept {
  const __m512 lut = _mm512_loadu_ps(w.code);
  // Interleave the high-nibble (even element) and low-nibble (odd element) weights.
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t b = block_begin; b < block_end; ++b) {
    QF_DECODE_BLOCK_512(w.packed + b * 32, lut, h0, h1, l0, l1);
    const __m512 scale = _mm512_set1_ps(w.absmax.at(b));
    float* dst = out + (b - block_begin) * kBlock;
    _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_permutex2var_ps(h0, first, l0), scale));
    _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_permutex2var_ps(h0, second, l0), scale));
    _mm512_storeu_ps(dst + 32, _mm512_mul_ps(_mm512_permutex2var_ps(h1, first, l1), scale));
    _mm512_storeu_ps(dst + 48, _mm512_mul_ps(_mm512_permutex2var_ps(h1, second, l1), scale));
  }
}

}  // namespace qforge::plugins::bnb::cpu
