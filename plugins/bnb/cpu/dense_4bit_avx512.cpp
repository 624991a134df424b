// AVX-512 whole-block quantize from, and dequantize to, dense F32 / F16 / BF16 memory. Both
// must equal dense_4bit.cpp's scalar reference bit for bit (tests/unit/plugins/bnb).
//
// Quantize, per 64-element block: absmax and the NaN/Inf check from one unsigned max over the
// raw bits with the sign cleared, widen to float32 (BF16: a 16-bit shift; F16: vcvtph2ps,
// exact), y = v * (1 / absmax) with the reciprocal computed in scalar exactly as the reference
// does, then the code: the number of decision thresholds y lies strictly above. NF4 reads it
// from a 32-cell table (Nf4Grid; 7 instructions per 16 values instead of 15 compares and 15
// adds); FP4's magnitude rank is a 3-step binary search, one vpermps + compare per step. Clamping y
// to [-1, 1] (the reference does) changes no comparison against thresholds inside (-1, 1), so it is
// skipped. Nibbles pack two codes per 64-bit lane.
//
// Dequantize: decode as dequantize_blocks_avx512 does, then round to BF16 in integer
// arithmetic (the reference's round to nearest even, NaN quieted) or to F16 with vcvtps2ph
// (IEEE round to nearest even; NaN rewritten to the reference's sign | 0x7e00).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/kernels.hpp"

#define QF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace qforge::plugins::bnb::cpu {
namespace {

constexpr float kMinAbsmax = 1e-38f;  // as quantize_4bit.cpp

inline float bf16_bits_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

QF_AVX512 inline __m512 load16(Dense kind, const unsigned char* p) {
  if (kind == Dense::kF32) return _mm512_loadu_ps(p);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if (kind == Dense::kF16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Number of NF4 thresholds strictly below y: t8 = thresholds[7], t4[c] = thresholds[c + 3],
// t2[c] = thresholds[c + 1], t1[c] = thresholds[c] (16-entry tables indexed by the count so far).
QF_AVX512 inline __m512i encode_nf4_16(__m512 y, __m512 t8, __m512 t4, __m512 t2, __m512 t1) {
  __m512i c = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(y, t8, _CMP_GT_OQ), _mm512_set1_epi32(8));
  c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(y, _mm512_permutexvar_ps(c, t4), _CMP_GT_OQ), c,
                            _mm512_set1_epi32(4));
  c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(y, _mm512_permutexvar_ps(c, t2), _CMP_GT_OQ), c,
                            _mm512_set1_epi32(2));
  c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(y, _mm512_permutexvar_ps(c, t1), _CMP_GT_OQ), c,
                            _mm512_set1_epi32(1));
  return c;
}

// NF4 by table: cell = floor((y + 1) * 16) splits [-1, 1] into 32 cells of 1/16, narrower
// than the closest two thresholds (0.080 apart), so a cell holds at most one threshold. The
// code is base[cell] (thresholds below the cell) plus y > thr[cell] (the cell's threshold, or
// 2 when it has none). A y whose cell rounds to a neighbour still gets the right count as long
// as no threshold lies within that rounding distance of a cell edge, which Nf4Grid checks
// (and the tests check on every threshold and its neighbouring floats).
struct Nf4Grid {
  alignas(64) int32_t base[32];
  alignas(64) float thr[32];
  bool usable = true;
  Nf4Grid() {
    for (int c = 0; c < 32; ++c) {
      const float lo = static_cast<float>(c) / 16.0f - 1.0f;
      const float hi = static_cast<float>(c + 1) / 16.0f - 1.0f;
      base[c] = 0;
      thr[c] = 2.0f;
      int inside = 0;
      for (float t : kNf4Thresholds) {
        if (t < lo) ++base[c];
        if (t >= lo && t < hi) {
          thr[c] = t;
          ++inside;
        }
        const float cell = (t + 1.0f) * 16.0f;
        if (std::fabs(cell - std::nearbyint(cell)) < 1e-3f) usable = false;
      }
      if (inside > 1) usable = false;
    }
  }
};

const Nf4Grid& nf4_grid() {
  static const Nf4Grid grid;
  return grid;
}

// The constants the loop needs, loaded once (GCC re-materialized _mm512_set1_* inside the
// block loop when they were written inline).
struct QuantTables {
  __m512i base_lo, base_hi, one, max_cell, order;
  __m512 thr_lo, thr_hi, sixteen, t8, t4, t2, t1, f4;
};

QF_AVX512 inline __m512i encode_nf4_grid(__m512 y, const QuantTables& t) {
  __m512i cell = _mm512_cvttps_epi32(_mm512_fmadd_ps(y, t.sixteen, t.sixteen));
  cell = _mm512_min_epi32(_mm512_max_epi32(cell, _mm512_setzero_si512()), t.max_cell);
  const __m512i base = _mm512_permutex2var_epi32(t.base_lo, cell, t.base_hi);
  const __m512 thr = _mm512_permutex2var_ps(t.thr_lo, cell, t.thr_hi);
  return _mm512_mask_add_epi32(base, _mm512_cmp_ps_mask(y, thr, _CMP_GT_OQ), base, t.one);
}

// FP4: sign bit from y < 0, the magnitude's rank among 7 thresholds by binary search, then the
// rank's 3-bit pattern. f4 = thresholds[3], f2[c] = thresholds[c + 1], f1[c] = thresholds[c].
QF_AVX512 inline __m512i encode_fp4_16(__m512 y, __m512 f4, __m512 f2, __m512 f1, __m512i order) {
  const __mmask16 neg = _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 a = _mm512_abs_ps(y);
  __m512i c = _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(a, f4, _CMP_GT_OQ), _mm512_set1_epi32(4));
  c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(a, _mm512_permutexvar_ps(c, f2), _CMP_GT_OQ), c,
                            _mm512_set1_epi32(2));
  c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(a, _mm512_permutexvar_ps(c, f1), _CMP_GT_OQ), c,
                            _mm512_set1_epi32(1));
  const __m512i code = _mm512_permutexvar_epi32(c, order);
  return _mm512_mask_or_epi32(code, neg, code, _mm512_set1_epi32(8));
}

// 16 codes (one per dword) -> 8 bytes, the even element in the high nibble.
QF_AVX512 inline __m128i pack16(__m512i c) {
  return _mm512_cvtepi64_epi8(_mm512_or_si512(_mm512_slli_epi64(c, 4), _mm512_srli_epi64(c, 32)));
}

QF_AVX512 __m512 table16(const float* values, int shift, int count) {
  alignas(64) float t[16];
  for (int i = 0; i < 16; ++i) t[i] = i + shift < count ? values[i + shift] : 2.0f;
  return _mm512_load_ps(t);
}

}  // namespace

namespace {

enum class Encoder { kNf4Grid, kNf4Search, kFp4 };

// The absmax of the 64-element block at p; false when the block holds NaN or Inf. |x| orders like
// the integer x & 0x7fffffff (F16 / BF16: & 0x7fff), and NaN / Inf are the patterns at or above the
// exponent mask, so one unsigned max gives both the absmax and the finiteness check.
template <Dense K>
QF_AVX512 inline bool block_absmax(const unsigned char* p, float* amax) {
  if (K == Dense::kF32) {
    const __m512i mask = _mm512_set1_epi32(0x7fffffff);
    __m512i m = _mm512_and_si512(_mm512_loadu_si512(p), mask);
#pragma GCC unroll 3
    for (int k = 1; k < 4; ++k) {
      m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_loadu_si512(p + 64 * k), mask));
    }
    const auto top = static_cast<uint32_t>(_mm512_reduce_max_epu32(m));
    std::memcpy(amax, &top, sizeof *amax);
    return top < 0x7f800000u;
  }
  const __m512i mask = _mm512_set1_epi16(0x7fff);
  const __m512i m = _mm512_max_epu16(_mm512_and_si512(_mm512_loadu_si512(p), mask),
                                     _mm512_and_si512(_mm512_loadu_si512(p + 64), mask));
  const __m256i h = _mm256_max_epu16(_mm512_castsi512_si256(m), _mm512_extracti64x4_epi64(m, 1));
  __m128i q = _mm_max_epu16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  // minpos finds the smallest of 8 words; on the complement that is the largest.
  q = _mm_minpos_epu16(_mm_xor_si128(q, _mm_set1_epi16(-1)));
  const auto top = static_cast<uint16_t>(~_mm_extract_epi16(q, 0));
  *amax = K == Dense::kF16 ? _cvtsh_ss(top) : bf16_bits_to_float(top);
  return top < (K == Dense::kF16 ? 0x7c00u : 0x7f80u);
}

// Blocks go in groups: first every absmax and reciprocal of the group (the divide and the
// horizontal max are long dependency chains), then the codes, so one block's chain overlaps
// the next block's encoding instead of stalling it.
template <Dense K, Encoder E>
QF_AVX512 int64_t quantize_run(const QuantTables& t, const unsigned char* base, int64_t b0,
                               int64_t b1, uint8_t* packed, float* absmax) {
  constexpr int64_t kGroup = 8;
  constexpr int64_t size = K == Dense::kF32 ? 4 : 2;
  for (int64_t g0 = b0; g0 < b1; g0 += kGroup) {
    const int64_t g1 = std::min(b1, g0 + kGroup);
    float inv[kGroup];
    int64_t stop = g1;
    for (int64_t b = g0; b < g1; ++b) {
      float amax;
      if (!block_absmax<K>(base + b * kBlock * size, &amax)) {
        stop = b;
        break;
      }
      absmax[b] = amax;
      inv[b - g0] = 1.0f / std::max(amax, kMinAbsmax);
    }
    for (int64_t b = g0; b < stop; ++b) {
      const unsigned char* p = base + b * kBlock * size;
      const __m512 scale = _mm512_set1_ps(inv[b - g0]);
      uint8_t* out = packed + b * (kBlock / 2);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m512 y = _mm512_mul_ps(load16(K, p + k * 16 * size), scale);
        __m512i c;
        if (E == Encoder::kNf4Grid) {
          c = encode_nf4_grid(y, t);
        } else if (E == Encoder::kNf4Search) {
          c = encode_nf4_16(y, t.t8, t.t4, t.t2, t.t1);
        } else {
          c = encode_fp4_16(y, t.f4, t.t2, t.t1, t.order);
        }
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + k * 8), pack16(c));
      }
    }
    if (stop < g1) return stop;
  }
  return b1;
}

template <Dense K>
QF_AVX512 int64_t quantize_kind(Encoder e, const QuantTables& t, const unsigned char* base,
                                int64_t b0, int64_t b1, uint8_t* packed, float* absmax) {
  switch (e) {
    case Encoder::kNf4Grid:
      return quantize_run<K, Encoder::kNf4Grid>(t, base, b0, b1, packed, absmax);
    case Encoder::kNf4Search:
      return quantize_run<K, Encoder::kNf4Search>(t, base, b0, b1, packed, absmax);
    case Encoder::kFp4:
      break;
  }
  return quantize_run<K, Encoder::kFp4>(t, base, b0, b1, packed, absmax);
}

}  // namespace

QF_AVX512 int64_t quantize_dense_4bit_avx512(QuantType type, Dense kind, const void* src,
                                             int64_t block_begin, int64_t block_end,
                                             uint8_t* packed, float* absmax) noexcept {
  const bool nf4 = type == QuantType::kNf4;
  const float* thr = nf4 ? kNf4Thresholds.data() : kFp4Thresholds.data();
  const int nthr = nf4 ? 15 : 7;
  const Nf4Grid& grid = nf4_grid();
  QuantTables t;
  t.base_lo = _mm512_load_si512(grid.base);
  t.base_hi = _mm512_load_si512(grid.base + 16);
  t.thr_lo = _mm512_load_ps(grid.thr);
  t.thr_hi = _mm512_load_ps(grid.thr + 16);
  t.one = _mm512_set1_epi32(1);
  t.max_cell = _mm512_set1_epi32(31);
  t.sixteen = _mm512_set1_ps(16.0f);
  t.t8 = _mm512_set1_ps(kNf4Thresholds[7]);
  t.t4 = table16(thr, 3, nthr);
  t.t2 = table16(thr, 1, nthr);
  t.t1 = table16(thr, 0, nthr);
  t.f4 = _mm512_set1_ps(kFp4Thresholds[3]);
  alignas(64) int32_t order_values[16] = {};
  for (int i = 0; i < 8; ++i) order_values[i] = kFp4MagnitudeOrder[i];
  t.order = _mm512_load_si512(order_values);
  const Encoder e = !nf4 ? Encoder::kFp4 : (grid.usable ? Encoder::kNf4Grid : Encoder::kNf4Search);
  const auto* base = static_cast<const unsigned char*>(src);
  switch (kind) {
    case Dense::kF32:
      return quantize_kind<Dense::kF32>(e, t, base, block_begin, block_end, packed, absmax);
    case Dense::kF16:
      return quantize_kind<Dense::kF16>(e, t, base, block_begin, block_end, packed, absmax);
    case Dense::kBF16:
      break;
  }
  return quantize_kind<Dense::kBF16>(e, t, base, block_begin, block_end, packed, absmax);
}

QF_AVX512 void dequantize_dense_avx512(const Weight4& w, Dense kind, int64_t block_begin,
                                       int64_t block_end, void* out, bool stream) noexcept {
  const __m512 lut = _mm512_loadu_ps(w.code);
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  // The high 16-bit halves of 32 dwords (two vectors), in order: BF16 after rounding.
  alignas(64) int16_t high_words[32];
  for (int i = 0; i < 32; ++i) high_words[i] = static_cast<int16_t>(2 * i + 1);
  const __m512i highs = _mm512_load_si512(high_words);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i bias = _mm512_set1_epi32(0x7fff);
  const __m512i quiet = _mm512_set1_epi32(0x00400000);
  auto* dst = static_cast<unsigned char*>(out);
  for (int64_t b = block_begin; b < block_end; ++b) {
    const uint8_t* q = w.packed + b * 32;
    const __m512i i0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
    const __m512i i1 =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)));
    const __m512 h0 = _mm512_permutexvar_ps(_mm512_srli_epi32(i0, 4), lut);
    const __m512 h1 = _mm512_permutexvar_ps(_mm512_srli_epi32(i1, 4), lut);
    const __m512 l0 = _mm512_permutexvar_ps(i0, lut);
    const __m512 l1 = _mm512_permutexvar_ps(i1, lut);
    const __m512 scale = _mm512_set1_ps(w.absmax.at(b));
    __m512 v[4];
    v[0] = _mm512_mul_ps(_mm512_permutex2var_ps(h0, first, l0), scale);
    v[1] = _mm512_mul_ps(_mm512_permutex2var_ps(h0, second, l0), scale);
    v[2] = _mm512_mul_ps(_mm512_permutex2var_ps(h1, first, l1), scale);
    v[3] = _mm512_mul_ps(_mm512_permutex2var_ps(h1, second, l1), scale);
    const int64_t i = b - block_begin;
    if (kind == Dense::kF32) {
      float* d = reinterpret_cast<float*>(dst) + i * kBlock;
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        if (stream) {
          _mm512_stream_ps(d + 16 * k, v[k]);
        } else {
          _mm512_storeu_ps(d + 16 * k, v[k]);
        }
      }
      continue;
    }
    __m512i half[2];
    if (kind == Dense::kBF16) {
#pragma GCC unroll 2
      for (int k = 0; k < 2; ++k) {
        __m512i r[2];
#pragma GCC unroll 2
        for (int j = 0; j < 2; ++j) {
          const __m512i u = _mm512_castps_si512(v[2 * k + j]);
          const __m512i rounded = _mm512_add_epi32(
              u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
          const __mmask16 nan = _mm512_fpclass_ps_mask(v[2 * k + j], 0x81);
          r[j] = _mm512_mask_or_epi32(rounded, nan, u, quiet);
        }
        half[k] = _mm512_permutex2var_epi16(r[0], highs, r[1]);
      }
    } else {
#pragma GCC unroll 2
      for (int k = 0; k < 2; ++k) {
        __m256i h[2];
#pragma GCC unroll 2
        for (int j = 0; j < 2; ++j) {
          const __m512 f = v[2 * k + j];
          h[j] = _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          const __mmask16 nan = _mm512_fpclass_ps_mask(f, 0x81);
          if (nan != 0) {
            const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(f), 16),
                                                  _mm512_set1_epi32(0x8000));
            const __m256i fix =
                _mm512_cvtepi32_epi16(_mm512_or_si512(sign, _mm512_set1_epi32(0x7e00)));
            h[j] = _mm256_mask_blend_epi16(nan, h[j], fix);
          }
        }
        half[k] = _mm512_inserti64x4(_mm512_castsi256_si512(h[0]), h[1], 1);
      }
    }
    auto* d = reinterpret_cast<__m512i*>(dst + i * kBlock * 2);
    if (stream) {
      _mm512_stream_si512(d, half[0]);
      _mm512_stream_si512(d + 1, half[1]);
    } else {
      _mm512_storeu_si512(d, half[0]);
      _mm512_storeu_si512(d + 1, half[1]);
    }
  }
  if (stream) _mm_sfence();
}

}  // namespace qforge::plugins::bnb::cpu
