// AVX-512F bodies of cpu/kernels.hpp, 16 floats per vector: the AVX2 method (kernels_avx2.cpp,
// note [hqq vector rounding] in kernels.hpp) with mask registers for the selects; the pow runs
// on 8 doubles per register.
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>

#include "cpu/kernels.hpp"

#define QF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

namespace qforge::plugins::hqq::cpu::avx512 {
namespace {

constexpr double kInvFact[14] = {1.0,
                                 1.0,
                                 1.0 / 2,
                                 1.0 / 6,
                                 1.0 / 24,
                                 1.0 / 120,
                                 1.0 / 720,
                                 1.0 / 5040,
                                 1.0 / 40320,
                                 1.0 / 362880,
                                 1.0 / 3628800,
                                 1.0 / 39916800,
                                 1.0 / 479001600,
                                 1.0 / 6227020800.0};

// log2 of 8 positive normal floats in double (as kernels_avx2.cpp's log2_4).
QF_AVX512 inline __m512d log2_8(__m256 x) {
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
  const __m256i mb = _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFF)),
                                     _mm256_set1_epi32(0x3F800000));
  __m512d m = _mm512_cvtps_pd(_mm256_castsi256_ps(mb));
  __m512d ed = _mm512_cvtepi32_pd(e);
  const __mmask8 big = _mm512_cmp_pd_mask(m, _mm512_set1_pd(1.4142135623730951), _CMP_GT_OQ);
  m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
  ed = _mm512_mask_add_pd(ed, big, ed, _mm512_set1_pd(1.0));
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d u = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
  const __m512d u2 = _mm512_mul_pd(u, u);
  __m512d poly = _mm512_set1_pd(1.0 / 21.0);
  for (int k = 9; k >= 0; --k) {
    poly = _mm512_fmadd_pd(poly, u2, _mm512_set1_pd(1.0 / (2.0 * k + 1.0)));
  }
  const __m512d l = _mm512_mul_pd(_mm512_mul_pd(u, poly), _mm512_set1_pd(2.0 / 0.6931471805599453));
  return _mm512_add_pd(ed, l);
}

QF_AVX512 inline __m512d exp2_8(__m512d y) {
  y = _mm512_min_pd(_mm512_max_pd(y, _mm512_set1_pd(-1000.0)), _mm512_set1_pd(1000.0));
  const __m512d n = _mm512_roundscale_pd(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512d t = _mm512_mul_pd(_mm512_sub_pd(y, n), _mm512_set1_pd(0.6931471805599453));
  __m512d poly = _mm512_set1_pd(kInvFact[13]);
  for (int k = 12; k >= 0; --k) poly = _mm512_fmadd_pd(poly, t, _mm512_set1_pd(kInvFact[k]));
  const __m512i ni = _mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(n));
  const __m512i two_n = _mm512_slli_epi64(_mm512_add_epi64(ni, _mm512_set1_epi64(1023)), 52);
  return _mm512_mul_pd(poly, _mm512_castsi512_pd(two_n));
}

QF_AVX512 inline __m512 pow16(__m512 x, __m512d p) {
  const __m256 xl = _mm512_castps512_ps256(x);
  const __m256 xh = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
  const __m256 lo = _mm512_cvtpd_ps(exp2_8(_mm512_mul_pd(p, log2_8(xl))));
  const __m256 hi = _mm512_cvtpd_ps(exp2_8(_mm512_mul_pd(p, log2_8(xh))));
  return _mm512_castpd_ps(
      _mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}

QF_AVX512 inline __m512d widen_sum(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return _mm512_add_pd(_mm512_cvtps_pd(lo), _mm512_cvtps_pd(hi));
}

QF_AVX512 inline __m512 quant16(__m512 w, __m512 s, __m512 z, __m512 mv) {
  const __m512 v = _mm512_roundscale_ps(_mm512_add_ps(_mm512_mul_ps(w, s), z),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), mv);
}

}  // namespace

QF_AVX512 void group_minmax(const float* w, int64_t g, int64_t j0, int64_t j1, float* lo,
                            float* hi) noexcept {
  const int64_t vec = g & ~int64_t{15};
  if (vec == 0) {
    avx2::group_minmax(w, g, j0, j1, lo, hi);
    return;
  }
  for (int64_t j = j0; j < j1; ++j) {
    const float* p = w + j * g;
    __m512 l = _mm512_loadu_ps(p);
    __m512 h = l;
    for (int64_t k = 16; k < vec; k += 16) {
      const __m512 v = _mm512_loadu_ps(p + k);
      l = _mm512_min_ps(l, v);
      h = _mm512_max_ps(h, v);
    }
    float a = _mm512_reduce_min_ps(l);
    float b = _mm512_reduce_max_ps(h);
    for (int64_t k = vec; k < g; ++k) {
      a = std::min(a, p[k]);
      b = std::max(b, p[k]);
    }
    lo[j] = a;
    hi[j] = b;
  }
}

QF_AVX512 void proximal_step(const StepArgs& a, int64_t j0, int64_t j1, double* err,
                             float* next) noexcept {
  const float bound = shrink_zero_bound(a.inv_beta, a.p_minus_1);
  if (bound == 0.0f) {
    scalar::proximal_step(a, j0, j1, err, next);
    return;
  }
  const int64_t g = a.g;
  const int64_t vec = g & ~int64_t{15};
  const __m512 mv = _mm512_set1_ps(a.max_v);
  const __m512 inv_beta = _mm512_set1_ps(a.inv_beta);
  const __m512 tv = _mm512_set1_ps(bound);
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i sign_mask = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512d p = _mm512_set1_pd(static_cast<double>(a.p_minus_1));
  for (int64_t j = j0; j < j1; ++j) {
    const float* w = a.w + j * g;
    const __m512 s = _mm512_set1_ps(a.scale[j]);
    const __m512 z = _mm512_set1_ps(a.zero[j]);
    __m512d e_sum = _mm512_setzero_pd();
    __m512d acc = _mm512_setzero_pd();
    for (int64_t k = 0; k < vec; k += 16) {
      const __m512 wv = _mm512_loadu_ps(w + k);
      const __m512 q = quant16(wv, s, z, mv);
      const __m512 d = _mm512_sub_ps(wv, _mm512_div_ps(_mm512_sub_ps(q, z), s));
      const __m512 ad = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d), abs_mask));
      e_sum = _mm512_add_pd(e_sum, widen_sum(ad));
      __m512 we = wv;
      const __mmask16 live = _mm512_cmp_ps_mask(ad, tv, _CMP_GT_OQ);
      if (live != 0) {
        const __m512 x = _mm512_mask_blend_ps(live, tv, ad);
        const __m512 pw = pow16(x, p);
        const __m512 v = _mm512_maskz_max_ps(live, _mm512_sub_ps(ad, _mm512_mul_ps(inv_beta, pw)),
                                             _mm512_setzero_ps());
        const __m512 e = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(v), _mm512_and_si512(_mm512_castps_si512(d), sign_mask)));
        we = _mm512_sub_ps(wv, e);
      }
      acc = _mm512_add_pd(acc, widen_sum(_mm512_sub_ps(q, _mm512_mul_ps(we, s))));
    }
    double e_tail = 0.0, acc_tail = 0.0;
    const float sj = a.scale[j], zj = a.zero[j];
    for (int64_t k = vec; k < g; ++k) {
      const float q = std::min(std::max(std::nearbyint(w[k] * sj + zj), 0.0f), a.max_v);
      const float d = w[k] - (q - zj) / sj;
      const float ad = std::fabs(d);
      e_tail += ad;
      const float v = std::max(ad - a.inv_beta * std::pow(ad, a.p_minus_1), 0.0f);
      const float e = d > 0.0f ? v : (d < 0.0f ? -v : 0.0f);
      acc_tail += q - (w[k] - e) * sj;
    }
    err[j] = _mm512_reduce_add_pd(e_sum) + e_tail;
    next[j] = static_cast<float>((_mm512_reduce_add_pd(acc) + acc_tail) / static_cast<double>(g));
  }
}

QF_AVX512 void quantize_codes(const float* w, int64_t g, int64_t j0, int64_t j1, const float* scale,
                              const float* zero, float max_v, uint8_t* codes) noexcept {
  const int64_t vec = g & ~int64_t{15};
  const __m512 mv = _mm512_set1_ps(max_v);
  for (int64_t j = j0; j < j1; ++j) {
    const float* p = w + j * g;
    uint8_t* c = codes + j * g;
    const __m512 s = _mm512_set1_ps(scale[j]);
    const __m512 z = _mm512_set1_ps(zero[j]);
    for (int64_t k = 0; k < vec; k += 16) {
      const __m512i q = _mm512_cvttps_epi32(quant16(_mm512_loadu_ps(p + k), s, z, mv));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c + k), _mm512_cvtepi32_epi8(q));
    }
    if (vec < g) {
      scalar::quantize_codes(p + vec, g - vec, 0, 1, scale + j, zero + j, max_v, c + vec);
    }
  }
}

}  // namespace qforge::plugins::hqq::cpu::avx512
#endif
