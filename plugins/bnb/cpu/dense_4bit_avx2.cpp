// AVX2 (+FMA, F16C) whole-block quantize from, and dequantize to, dense F32 / F16 / BF16
// memory; the same method as dense_4bit_avx512.cpp on 8 lanes. vpermps indexes 8 entries, so
// the NF4 binary search tracks h = count / 2 and step s reads a table holding
// thresholds[2h + s]. Must equal dense_4bit.cpp's scalar reference bit for bit.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>

#include "cpu/kernels.hpp"

#define QF_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace qforge::plugins::bnb::cpu {
namespace {

constexpr float kMinAbsmax = 1e-38f;  // as quantize_4bit.cpp

QF_AVX2 inline __m256 load8(Dense kind, const unsigned char* p) {
  if (kind == Dense::kF32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (kind == Dense::kF16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// 8-entry table: entry i = values[stride * i + shift] (2.0, above every y, past the end).
QF_AVX2 __m256 table8(const float* values, int stride, int shift, int count) {
  alignas(32) float t[8];
  for (int i = 0; i < 8; ++i) {
    const int k = stride * i + shift;
    t[i] = k < count ? values[k] : 2.0f;
  }
  return _mm256_load_ps(t);
}

QF_AVX2 inline __m256i gt(__m256 a, __m256 b) {
  return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_GT_OQ));
}

QF_AVX2 inline __m256i encode_nf4_8(__m256 y, __m256 t8, __m256 l2, __m256 l1, __m256 l0) {
  __m256i h = _mm256_and_si256(gt(y, t8), _mm256_set1_epi32(4));
  h = _mm256_add_epi32(
      h, _mm256_and_si256(gt(y, _mm256_permutevar8x32_ps(l2, h)), _mm256_set1_epi32(2)));
  h = _mm256_sub_epi32(h, gt(y, _mm256_permutevar8x32_ps(l1, h)));  // a true compare is -1
  return _mm256_sub_epi32(_mm256_add_epi32(h, h), gt(y, _mm256_permutevar8x32_ps(l0, h)));
}

QF_AVX2 inline __m256i encode_fp4_8(__m256 y, __m256 f4, __m256 f2, __m256 f1, __m256i order) {
  const __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_LT_OQ));
  const __m256 a = _mm256_and_ps(y, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
  __m256i c = _mm256_and_si256(gt(a, f4), _mm256_set1_epi32(4));
  c = _mm256_add_epi32(
      c, _mm256_and_si256(gt(a, _mm256_permutevar8x32_ps(f2, c)), _mm256_set1_epi32(2)));
  c = _mm256_sub_epi32(c, gt(a, _mm256_permutevar8x32_ps(f1, c)));
  return _mm256_or_si256(_mm256_permutevar8x32_epi32(order, c),
                         _mm256_and_si256(neg, _mm256_set1_epi32(8)));
}

// 32 codes (four vectors of dwords) -> 32 bytes in element order.
QF_AVX2 inline __m256i codes_to_bytes(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(a, b), _mm256_packus_epi32(c, d));
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

}  // namespace

QF_AVX2 int64_t quantize_dense_4bit_avx2(QuantType type, Dense kind, const void* src,
                                         int64_t block_begin, int64_t block_end, uint8_t* packed,
                                         float* absmax) noexcept {
  const bool nf4 = type == QuantType::kNf4;
  const float* thr = nf4 ? kNf4Thresholds.data() : kFp4Thresholds.data();
  const int nthr = nf4 ? 15 : 7;
  // NF4 tables by h = count / 2; FP4 tables by the count itself.
  const __m256 t8 = _mm256_set1_ps(kNf4Thresholds[7]);
  const __m256 l2 = nf4 ? table8(thr, 2, 3, nthr) : table8(thr, 1, 1, nthr);
  const __m256 l1 = nf4 ? table8(thr, 2, 1, nthr) : table8(thr, 1, 0, nthr);
  const __m256 l0 = table8(thr, 2, 0, nthr);
  const __m256 f4 = _mm256_set1_ps(kFp4Thresholds[3]);
  const __m256i order = _mm256_setr_epi32(
      kFp4MagnitudeOrder[0], kFp4MagnitudeOrder[1], kFp4MagnitudeOrder[2], kFp4MagnitudeOrder[3],
      kFp4MagnitudeOrder[4], kFp4MagnitudeOrder[5], kFp4MagnitudeOrder[6], kFp4MagnitudeOrder[7]);
  const __m256i exponent = _mm256_set1_epi32(0x7f800000);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i nibble_weights = _mm256_set1_epi16(0x0110);  // even byte * 16 + odd byte
  const int64_t size = kind == Dense::kF32 ? 4 : 2;
  const auto* base = static_cast<const unsigned char*>(src);
  for (int64_t b = block_begin; b < block_end; ++b) {
    const unsigned char* p = base + b * kBlock * size;
    __m256 v[8];
    __m256i bad = _mm256_setzero_si256();
    __m256 m = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      v[k] = load8(kind, p + k * 8 * size);
      const __m256i bits = _mm256_castps_si256(v[k]);
      bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(bits, exponent), exponent));
      m = _mm256_max_ps(m, _mm256_and_ps(v[k], abs_mask));
    }
    if (!_mm256_testz_si256(bad, bad)) return b;
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    const float amax = _mm_cvtss_f32(r);
    absmax[b] = amax;
    const __m256 inv = _mm256_set1_ps(1.0f / std::max(amax, kMinAbsmax));
    __m256i c[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256 y = _mm256_mul_ps(v[k], inv);
      c[k] = nf4 ? encode_nf4_8(y, t8, l2, l1, l0) : encode_fp4_8(y, f4, l2, l1, order);
    }
    const __m256i lo = _mm256_maddubs_epi16(codes_to_bytes(c[0], c[1], c[2], c[3]), nibble_weights);
    const __m256i hi = _mm256_maddubs_epi16(codes_to_bytes(c[4], c[5], c[6], c[7]), nibble_weights);
    const __m256i out = _mm256_permute4x64_epi64(_mm256_packus_epi16(lo, hi), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(packed + b * (kBlock / 2)), out);
  }
  return block_end;
}

QF_AVX2 void dequantize_dense_avx2(const Weight4& w, Dense kind, int64_t block_begin,
                                   int64_t block_end, void* out, bool stream) noexcept {
  const __m256 lo_lut = _mm256_loadu_ps(w.code);
  const __m256 hi_lut = _mm256_loadu_ps(w.code + 8);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i bias = _mm256_set1_epi32(0x7fff);
  const __m256i quiet = _mm256_set1_epi32(0x00400000);
  auto* dst = static_cast<unsigned char*>(out);
  for (int64_t b = block_begin; b < block_end; ++b) {
    const __m256 scale = _mm256_set1_ps(w.absmax.at(b));
    const int64_t i = b - block_begin;
    for (int part = 0; part < 4; ++part) {
      const __m256i q = _mm256_cvtepu8_epi32(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.packed + b * 32 + part * 8)));
      const __m256i qh = _mm256_srli_epi32(q, 4);
      const __m256 h = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo_lut, qh),
                                        _mm256_permutevar8x32_ps(hi_lut, qh),
                                        _mm256_castsi256_ps(_mm256_slli_epi32(qh, 28)));
      const __m256 l =
          _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo_lut, q), _mm256_permutevar8x32_ps(hi_lut, q),
                           _mm256_castsi256_ps(_mm256_slli_epi32(q, 28)));
      const __m256 ab = _mm256_unpacklo_ps(h, l);
      const __m256 cd = _mm256_unpackhi_ps(h, l);
      const __m256 v0 = _mm256_mul_ps(_mm256_permute2f128_ps(ab, cd, 0x20), scale);
      const __m256 v1 = _mm256_mul_ps(_mm256_permute2f128_ps(ab, cd, 0x31), scale);
      if (kind == Dense::kF32) {
        float* d = reinterpret_cast<float*>(dst) + i * kBlock + part * 16;
        if (stream) {
          _mm256_stream_ps(d, v0);
          _mm256_stream_ps(d + 8, v1);
        } else {
          _mm256_storeu_ps(d, v0);
          _mm256_storeu_ps(d + 8, v1);
        }
        continue;
      }
      __m256i h16;
      if (kind == Dense::kBF16) {
        __m256i r[2];
        const __m256 vs[2] = {v0, v1};
        for (int j = 0; j < 2; ++j) {
          const __m256i u = _mm256_castps_si256(vs[j]);
          const __m256i rounded = _mm256_add_epi32(
              u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
          const __m256 nan = _mm256_cmp_ps(vs[j], vs[j], _CMP_UNORD_Q);
          r[j] = _mm256_srli_epi32(_mm256_castps_si256(_mm256_blendv_ps(
                                       _mm256_castsi256_ps(rounded),
                                       _mm256_castsi256_ps(_mm256_or_si256(u, quiet)), nan)),
                                   16);
        }
        h16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
      } else {
        __m128i hh[2];
        const __m256 vs[2] = {v0, v1};
        for (int j = 0; j < 2; ++j) {
          hh[j] = _mm256_cvtps_ph(vs[j], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          const __m256 nan = _mm256_cmp_ps(vs[j], vs[j], _CMP_UNORD_Q);
          if (_mm256_movemask_ps(nan) != 0) {
            const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(vs[j]), 16),
                                                  _mm256_set1_epi32(0x8000));
            const __m256i fix32 = _mm256_or_si256(sign, _mm256_set1_epi32(0x7e00));
            const __m256i h32 =
                _mm256_blendv_epi8(_mm256_cvtepu16_epi32(hh[j]), fix32, _mm256_castps_si256(nan));
            hh[j] = _mm_packus_epi32(_mm256_castsi256_si128(h32), _mm256_extracti128_si256(h32, 1));
          }
        }
        h16 = _mm256_inserti128_si256(_mm256_castsi128_si256(hh[0]), hh[1], 1);
      }
      auto* d = reinterpret_cast<__m256i*>(dst + (i * kBlock + part * 16) * 2);
      if (stream) {
        _mm256_stream_si256(d, h16);
      } else {
        _mm256_storeu_si256(d, h16);
      }
    }
  }
  if (stream) _mm_sfence();
}

}  // namespace qforge::plugins::bnb::cpu
