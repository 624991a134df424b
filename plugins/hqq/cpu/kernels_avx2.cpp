// AVX2+FMA bodies of cpu/kernels.hpp, 8 floats per vector, rounding as note [hqq vector
// rounding] (kernels.hpp) says: single float ops in hqq's order, FMA only inside the double
// polynomials of the pow.
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>

#include "cpu/kernels.hpp"

#define QF_AVX2 __attribute__((target("avx2,fma")))

namespace qforge::plugins::hqq::cpu::avx2 {
namespace {

// 1 / k!, k = 0..13.
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

// log2 of 4 positive normal floats, in double: x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(u), u = (m - 1) / (m + 1), |u| <= 0.172; the atanh series to u^21 leaves a
// relative error below 1e-16.
QF_AVX2 inline __m256d log2_4(__m128 x) {
  const __m128i bits = _mm_castps_si128(x);
  const __m128i e = _mm_sub_epi32(_mm_srli_epi32(bits, 23), _mm_set1_epi32(127));
  const __m128i mb =
      _mm_or_si128(_mm_and_si128(bits, _mm_set1_epi32(0x7FFFFF)), _mm_set1_epi32(0x3F800000));
  __m256d m = _mm256_cvtps_pd(_mm_castsi128_ps(mb));
  __m256d ed = _mm256_cvtepi32_pd(e);
  const __m256d big = _mm256_cmp_pd(m, _mm256_set1_pd(1.4142135623730951), _CMP_GT_OQ);
  m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
  ed = _mm256_add_pd(ed, _mm256_and_pd(big, _mm256_set1_pd(1.0)));
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d u = _mm256_div_pd(_mm256_sub_pd(m, one), _mm256_add_pd(m, one));
  const __m256d u2 = _mm256_mul_pd(u, u);
  __m256d poly = _mm256_set1_pd(1.0 / 21.0);
  for (int k = 9; k >= 0; --k) {
    poly = _mm256_fmadd_pd(poly, u2, _mm256_set1_pd(1.0 / (2.0 * k + 1.0)));
  }
  // log2(m) = 2 u poly / ln 2
  const __m256d l = _mm256_mul_pd(_mm256_mul_pd(u, poly), _mm256_set1_pd(2.0 / 0.6931471805599453));
  return _mm256_add_pd(ed, l);
}

// 2^y in double, |y| clamped to 1000 (the float result is then 0 or inf either way): y = n + f,
// |f| <= 1/2, exp(f ln 2) by its Taylor series to degree 13 (relative error below 1e-17).
QF_AVX2 inline __m256d exp2_4(__m256d y) {
  y = _mm256_min_pd(_mm256_max_pd(y, _mm256_set1_pd(-1000.0)), _mm256_set1_pd(1000.0));
  const __m256d n = _mm256_round_pd(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256d t = _mm256_mul_pd(_mm256_sub_pd(y, n), _mm256_set1_pd(0.6931471805599453));
  __m256d poly = _mm256_set1_pd(kInvFact[13]);
  for (int k = 12; k >= 0; --k) poly = _mm256_fmadd_pd(poly, t, _mm256_set1_pd(kInvFact[k]));
  const __m256i ni = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n));
  const __m256i two_n = _mm256_slli_epi64(_mm256_add_epi64(ni, _mm256_set1_epi64x(1023)), 52);
  return _mm256_mul_pd(poly, _mm256_castsi256_pd(two_n));
}

// |x|^p for 8 positive normal floats, rounded once to float.
QF_AVX2 inline __m256 pow8v(__m256 x, __m256d p) {
  const __m256d lo = exp2_4(_mm256_mul_pd(p, log2_4(_mm256_castps256_ps128(x))));
  const __m256d hi = exp2_4(_mm256_mul_pd(p, log2_4(_mm256_extractf128_ps(x, 1))));
  return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
}

QF_AVX2 inline __m256d widen_sum(__m256 v) {
  return _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                       _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

QF_AVX2 inline double hsum_pd(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// clamp(round(w * s + z), 0, max_v): a multiply, then an add (PyTorch rounds both).
QF_AVX2 inline __m256 quant8(__m256 w, __m256 s, __m256 z, __m256 mv) {
  const __m256 v = _mm256_round_ps(_mm256_add_ps(_mm256_mul_ps(w, s), z),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), mv);
}

}  // namespace

QF_AVX2 void pow8(const float* x, float p, float* out) noexcept {
  _mm256_storeu_ps(out, pow8v(_mm256_loadu_ps(x), _mm256_set1_pd(static_cast<double>(p))));
}

QF_AVX2 void group_minmax(const float* w, int64_t g, int64_t j0, int64_t j1, float* lo,
                          float* hi) noexcept {
  const int64_t vec = g & ~int64_t{7};
  if (vec == 0) {
    scalar::group_minmax(w, g, j0, j1, lo, hi);
    return;
  }
  for (int64_t j = j0; j < j1; ++j) {
    const float* p = w + j * g;
    __m256 l = _mm256_loadu_ps(p);
    __m256 h = l;
    for (int64_t k = 8; k < vec; k += 8) {
      const __m256 v = _mm256_loadu_ps(p + k);
      l = _mm256_min_ps(l, v);
      h = _mm256_max_ps(h, v);
    }
    alignas(32) float ls[8], hs[8];
    _mm256_store_ps(ls, l);
    _mm256_store_ps(hs, h);
    float a = ls[0], b = hs[0];
    for (int i = 1; i < 8; ++i) {
      a = std::min(a, ls[i]);
      b = std::max(b, hs[i]);
    }
    for (int64_t k = vec; k < g; ++k) {
      a = std::min(a, p[k]);
      b = std::max(b, p[k]);
    }
    lo[j] = a;
    hi[j] = b;
  }
}

QF_AVX2 void proximal_step(const StepArgs& a, int64_t j0, int64_t j1, double* err,
                           float* next) noexcept {
  const float bound = shrink_zero_bound(a.inv_beta, a.p_minus_1);
  if (bound == 0.0f) {
    scalar::proximal_step(a, j0, j1, err, next);
    return;
  }
  const int64_t g = a.g;
  const int64_t vec = g & ~int64_t{7};
  const __m256 mv = _mm256_set1_ps(a.max_v);
  const __m256 inv_beta = _mm256_set1_ps(a.inv_beta);
  const __m256 tv = _mm256_set1_ps(bound);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  const __m256d p = _mm256_set1_pd(static_cast<double>(a.p_minus_1));
  for (int64_t j = j0; j < j1; ++j) {
    const float* w = a.w + j * g;
    const __m256 s = _mm256_set1_ps(a.scale[j]);
    const __m256 z = _mm256_set1_ps(a.zero[j]);
    __m256d e_sum = _mm256_setzero_pd();
    __m256d acc = _mm256_setzero_pd();
    for (int64_t k = 0; k < vec; k += 8) {
      const __m256 wv = _mm256_loadu_ps(w + k);
      const __m256 q = quant8(wv, s, z, mv);
      const __m256 d = _mm256_sub_ps(wv, _mm256_div_ps(_mm256_sub_ps(q, z), s));
      const __m256 ad = _mm256_and_ps(d, abs_mask);
      e_sum = _mm256_add_pd(e_sum, widen_sum(ad));
      __m256 we = wv;  // W - W_e; W_e = 0 (exactly, as the scalar shrink) at or below the bound
      const __m256 live = _mm256_cmp_ps(ad, tv, _CMP_GT_OQ);
      if (_mm256_movemask_ps(live) != 0) {
        // Lanes at or below the bound may hold 0 or subnormals, which log2_4 does not take:
        // they compute on the bound instead and are masked to 0 after.
        const __m256 x = _mm256_blendv_ps(tv, ad, live);
        const __m256 pw = pow8v(x, p);
        __m256 v =
            _mm256_max_ps(_mm256_sub_ps(ad, _mm256_mul_ps(inv_beta, pw)), _mm256_setzero_ps());
        v = _mm256_and_ps(v, live);
        const __m256 e = _mm256_or_ps(v, _mm256_and_ps(d, sign_mask));
        we = _mm256_sub_ps(wv, e);
      }
      acc = _mm256_add_pd(acc, widen_sum(_mm256_sub_ps(q, _mm256_mul_ps(we, s))));
    }
    // The group's tail (g not a multiple of 8): the scalar formulas, in element order.
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
    err[j] = hsum_pd(e_sum) + e_tail;
    next[j] = static_cast<float>((hsum_pd(acc) + acc_tail) / static_cast<double>(g));
  }
}

QF_AVX2 void quantize_codes(const float* w, int64_t g, int64_t j0, int64_t j1, const float* scale,
                            const float* zero, float max_v, uint8_t* codes) noexcept {
  const int64_t vec = g & ~int64_t{7};
  const __m256 mv = _mm256_set1_ps(max_v);
  for (int64_t j = j0; j < j1; ++j) {
    const float* p = w + j * g;
    uint8_t* c = codes + j * g;
    const __m256 s = _mm256_set1_ps(scale[j]);
    const __m256 z = _mm256_set1_ps(zero[j]);
    for (int64_t k = 0; k < vec; k += 8) {
      const __m256i q = _mm256_cvttps_epi32(quant8(_mm256_loadu_ps(p + k), s, z, mv));
      const __m128i h = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(c + k), _mm_packus_epi16(h, h));
    }
    if (vec < g)
      scalar::quantize_codes(p + vec, g - vec, 0, 1, scale + j, zero + j, max_v, c + vec);
  }
}

}  // namespace qforge::plugins::hqq::cpu::avx2
#endif
