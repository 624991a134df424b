// CPU x @ W^T (see hqq_matmul.hpp). The AVX2 kernel carries a per-function target attribute,
// so no vector instruction reaches the scalar path and the plugin runs on any x86-64.
#include "hqq_matmul.hpp"

#include <vector>

#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define QF_HQQ_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace qforge::plugins::hqq {
namespace {

// Tokens [t0, t1) against weight rows [o0, o1); y keeps its row stride `out`.
void rows_scalar(const float* x, int64_t t0, int64_t t1, int64_t in, const float* w, int64_t o0,
                 int64_t o1, int64_t out, const float* bias, float* y) {
  for (int64_t t = t0; t < t1; ++t) {
    const float* xr = x + t * in;
    for (int64_t o = o0; o < o1; ++o) {
      const float* wr = w + o * in;
      float acc = 0.0f;
      for (int64_t i = 0; i < in; ++i) acc += xr[i] * wr[i];
      y[t * out + o] = acc + (bias != nullptr ? bias[o] : 0.0f);
    }
  }
}

#if defined(__x86_64__)
QF_HQQ_AVX2 inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

// Up to 4 tokens at a time against every weight row.
QF_HQQ_AVX2 void rows_avx2(const float* x, int64_t t0, int64_t t1, int64_t in, const float* w,
                           int64_t o0, int64_t o1, int64_t out, const float* bias, float* y) {
  const int64_t vec = in & ~int64_t{7};
  for (int64_t t = t0; t < t1; t += 4) {
    const int64_t nt = (t1 - t) < 4 ? (t1 - t) : 4;
    const float* xr[4];
    for (int64_t k = 0; k < 4; ++k) xr[k] = x + (t + (k < nt ? k : 0)) * in;
    for (int64_t o = o0; o < o1; ++o) {
      const float* wr = w + o * in;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      for (int64_t i = 0; i < vec; i += 8) {
        const __m256 wv = _mm256_loadu_ps(wr + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[0] + i), wv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[1] + i), wv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[2] + i), wv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[3] + i), wv, a3);
      }
      float acc[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
      for (int64_t i = vec; i < in; ++i) {
        for (int64_t k = 0; k < 4; ++k) acc[k] += xr[k][i] * wr[i];
      }
      const float b = bias != nullptr ? bias[o] : 0.0f;
      for (int64_t k = 0; k < nt; ++k) y[(t + k) * out + o] = acc[k] + b;
    }
  }
}
#endif

}  // namespace

bool matmul_uses_avx2() noexcept {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2;
#else
  return false;
#endif
}

void matmul_xwt(const sdk::Call& call, const float* x, int64_t tokens, int64_t in, const float* w,
                int64_t out, const float* bias, float* y) {
  const bool avx2 = matmul_uses_avx2();
  const auto run = [&](int64_t t0, int64_t t1, int64_t o0, int64_t o1) {
#if defined(__x86_64__)
    if (avx2) {
      rows_avx2(x, t0, t1, in, w, o0, o1, out, bias, y);
      return;
    }
#endif
    rows_scalar(x, t0, t1, in, w, o0, o1, out, bias, y);
  };
  // Many tokens: threads take blocks of 4 tokens. Few tokens (decode): threads take output rows.
  if (tokens >= 8) {
    const int64_t blocks = (tokens + 3) / 4;
    call.parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
      run(b0 * 4, b1 * 4 < tokens ? b1 * 4 : tokens, 0, out);
    });
    return;
  }
  call.parallel_for(out, 64, [&](int64_t o0, int64_t o1) { run(0, tokens, o0, o1); });
}

void matmul_xwt_rows(const sdk::Call& call, const float* x, int64_t tokens, int64_t in, int64_t out,
                     const std::function<void(int64_t, float*)>& row, const float* bias, float* y) {
  const bool avx2 = matmul_uses_avx2();
  call.parallel_for(out, 16, [&](int64_t o0, int64_t o1) {
    std::vector<float> w(static_cast<size_t>(in));
    for (int64_t o = o0; o < o1; ++o) {
      row(o, w.data());
      // One weight row against every token: the row's y column is y + o with stride `out`.
      const float* b = bias != nullptr ? bias + o : nullptr;
#if defined(__x86_64__)
      if (avx2) {
        rows_avx2(x, 0, tokens, in, w.data(), 0, 1, out, b, y + o);
        continue;
      }
#endif
      rows_scalar(x, 0, tokens, in, w.data(), 0, 1, out, b, y + o);
    }
  });
}

}  // namespace qforge::plugins::hqq
