// AVX-512 bodies of cpu/kernels.hpp, 16 output lanes per vector; bit-identical to the scalar path
// (kernels.hpp says why). gemv is the AVX2 strip at 16 lanes. Output tails take a masked vector, so
// only 3-bit weights (values straddle words) fall back to the scalar unpack. accumulate blocks
// tokens: a GEMM reads each weight vector once for up to four tokens, a GEMV keeps four vectors of
// outputs in registers.
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "cpu/kernels.hpp"

#define QF_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2")))

namespace qforge::plugins::gptq::cpu::avx512 {
namespace {

QF_AVX512 inline __mmask16 tail_mask(int64_t n) {
  return static_cast<__mmask16>((1u << static_cast<unsigned>(n)) - 1u);
}

// y[t][o .. o+16) += sum over i of x[t][i] * w[i][..], for `T` tokens at once; lanes not in
// `m` are neither read nor written.
template <int T>
QF_AVX512 inline void tokens_x16(const float* wt, int64_t k, int64_t ldw, const float* x,
                                 int64_t ldx, float* y, int64_t ldy, __mmask16 m) {
  __m512 a[T];
  for (int t = 0; t < T; ++t) a[t] = _mm512_maskz_loadu_ps(m, y + t * ldy);
  for (int64_t i = 0; i < k; ++i) {
    const __m512 w = _mm512_maskz_loadu_ps(m, wt + i * ldw);
    for (int t = 0; t < T; ++t) {
      a[t] = _mm512_add_ps(a[t], _mm512_mul_ps(_mm512_set1_ps(x[t * ldx + i]), w));
    }
  }
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * ldy, m, a[t]);
}

// Four tokens by two vectors: each weight load feeds four accumulators.
QF_AVX512 inline void tokens4_x32(const float* wt, int64_t k, int64_t ldw, const float* x,
                                  int64_t ldx, float* y, int64_t ldy) {
  __m512 a[4][2];
  for (int t = 0; t < 4; ++t) {
    a[t][0] = _mm512_loadu_ps(y + t * ldy);
    a[t][1] = _mm512_loadu_ps(y + t * ldy + 16);
  }
  for (int64_t i = 0; i < k; ++i) {
    const __m512 w0 = _mm512_loadu_ps(wt + i * ldw);
    const __m512 w1 = _mm512_loadu_ps(wt + i * ldw + 16);
    for (int t = 0; t < 4; ++t) {
      const __m512 xi = _mm512_set1_ps(x[t * ldx + i]);
      a[t][0] = _mm512_add_ps(a[t][0], _mm512_mul_ps(xi, w0));
      a[t][1] = _mm512_add_ps(a[t][1], _mm512_mul_ps(xi, w1));
    }
  }
  for (int t = 0; t < 4; ++t) {
    _mm512_storeu_ps(y + t * ldy, a[t][0]);
    _mm512_storeu_ps(y + t * ldy + 16, a[t][1]);
  }
}

// One token, four vectors of outputs in registers over the whole k loop.
QF_AVX512 inline void token1_x64(const float* wt, int64_t k, int64_t ldw, const float* x,
                                 float* y) {
  __m512 a0 = _mm512_loadu_ps(y), a1 = _mm512_loadu_ps(y + 16);
  __m512 a2 = _mm512_loadu_ps(y + 32), a3 = _mm512_loadu_ps(y + 48);
  for (int64_t i = 0; i < k; ++i) {
    const __m512 xi = _mm512_set1_ps(x[i]);
    const float* wr = wt + i * ldw;
    a0 = _mm512_add_ps(a0, _mm512_mul_ps(xi, _mm512_loadu_ps(wr)));
    a1 = _mm512_add_ps(a1, _mm512_mul_ps(xi, _mm512_loadu_ps(wr + 16)));
    a2 = _mm512_add_ps(a2, _mm512_mul_ps(xi, _mm512_loadu_ps(wr + 32)));
    a3 = _mm512_add_ps(a3, _mm512_mul_ps(xi, _mm512_loadu_ps(wr + 48)));
  }
  _mm512_storeu_ps(y, a0);
  _mm512_storeu_ps(y + 16, a1);
  _mm512_storeu_ps(y + 32, a2);
  _mm512_storeu_ps(y + 48, a3);
}

// Outputs [o0, o1) of `tokens` tokens (1..4) in vectors of 16, the last one masked.
template <int T>
QF_AVX512 inline void tokens_all(const float* wt, int64_t k, int64_t ldw, const float* x,
                                 int64_t ldx, int64_t o0, int64_t o1, float* y, int64_t ldy) {
  int64_t o = o0;
  if (T == 4) {
    for (; o + 32 <= o1; o += 32) tokens4_x32(wt + (o - o0), k, ldw, x, ldx, y + o, ldy);
  }
  if (T == 1) {
    for (; o + 64 <= o1; o += 64) token1_x64(wt + (o - o0), k, ldw, x, y + o);
  }
  for (; o < o1; o += 16) {
    const __mmask16 m = o + 16 <= o1 ? static_cast<__mmask16>(0xFFFF) : tail_mask(o1 - o);
    tokens_x16<T>(wt + (o - o0), k, ldw, x, ldx, y + o, ldy, m);
  }
}

// Outputs [o, o + 16 * kVecs) of cpu::gemv (the last vector masked by `tail`): as the AVX2
// strip, the weight formed in registers, a group's zeros and scales reloaded only when g_idx
// changes, the word row 4 rows ahead prefetched.
template <int kVecs>
QF_AVX512 inline void gemv_strip(const PackedMatrix& w, int64_t i0, int64_t i1, const float* x,
                                 int64_t o, float* y, __mmask16 tail) {
  const __m512i mask = _mm512_set1_epi32((1 << w.bits) - 1);
  __mmask16 m[kVecs];
  __m512 acc[kVecs], scale[kVecs];
  __m512i zero[kVecs];
  for (int v = 0; v < kVecs; ++v) {
    m[v] = v + 1 == kVecs ? tail : static_cast<__mmask16>(0xFFFF);
    acc[v] = _mm512_maskz_loadu_ps(m[v], y + o + 16 * v);
    scale[v] = _mm512_setzero_ps();
    zero[v] = _mm512_setzero_si512();
  }
  const int64_t rows = w.in * w.bits / 32;
  int64_t last = -1;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = w.g_idx[i];
    if (g != last) {
      last = g;
      for (int v = 0; v < kVecs; ++v) {
        zero[v] = _mm512_maskz_loadu_epi32(m[v], w.zeros + g * w.out + o + 16 * v);
        scale[v] = _mm512_maskz_loadu_ps(m[v], w.scales + g * w.out + o + 16 * v);
      }
    }
    const int64_t bit = i * w.bits;
    const int32_t* words = w.qweight + (bit / 32) * w.out + o;
    if (bit % 32 == 0 && bit / 32 + 4 < rows) {
      _mm_prefetch(reinterpret_cast<const char*>(words + 4 * w.out), _MM_HINT_T0);
    }
    const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(bit % 32));
    const __m512 xi = _mm512_set1_ps(x[i]);
    for (int v = 0; v < kVecs; ++v) {
      const __m512i raw = _mm512_maskz_loadu_epi32(m[v], words + 16 * v);
      const __m512i code = _mm512_and_si512(_mm512_srl_epi32(raw, shift), mask);
      const __m512 weight =
          _mm512_mul_ps(scale[v], _mm512_cvtepi32_ps(_mm512_sub_epi32(code, zero[v])));
      acc[v] = _mm512_add_ps(acc[v], _mm512_mul_ps(xi, weight));
    }
  }
  for (int v = 0; v < kVecs; ++v) _mm512_mask_storeu_ps(y + o + 16 * v, m[v], acc[v]);
}

}  // namespace

QF_AVX512 void gemv(const PackedMatrix& w, int64_t i0, int64_t i1, const float* x, int64_t o0,
                    int64_t o1, float* y) noexcept {
  if (w.bits == 3) return scalar::gemv(w, i0, i1, x, o0, o1, y);
  const auto full = static_cast<__mmask16>(0xFFFF);
  int64_t o = o0;
  for (; o + 64 <= o1; o += 64) gemv_strip<4>(w, i0, i1, x, o, y, full);
  for (; o < o1; o += 16) {
    gemv_strip<1>(w, i0, i1, x, o, y, o + 16 <= o1 ? full : tail_mask(o1 - o));
  }
}

QF_AVX512 void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0,
                                int64_t o1, float* wt, int64_t ldw) noexcept {
  if (w.bits == 3) return scalar::dequantize_block(w, i0, i1, o0, o1, wt, ldw);
  const __m512i mask = _mm512_set1_epi32((1 << w.bits) - 1);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = w.g_idx[i];
    const int32_t* z = w.zeros + g * w.out;
    const float* s = w.scales + g * w.out;
    const int32_t* words = w.qweight + (i * w.bits / 32) * w.out;
    const __m128i shift = _mm_cvtsi32_si128(static_cast<int>((i * w.bits) % 32));
    float* row = wt + (i - i0) * ldw - o0;
    for (int64_t o = o0; o < o1; o += 16) {
      const __mmask16 m = o + 16 <= o1 ? static_cast<__mmask16>(0xFFFF) : tail_mask(o1 - o);
      const __m512i v = _mm512_maskz_loadu_epi32(m, words + o);
      const __m512i code = _mm512_and_si512(_mm512_srl_epi32(v, shift), mask);
      const __m512i zero = _mm512_maskz_loadu_epi32(m, z + o);
      const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(code, zero));
      _mm512_mask_storeu_ps(row + o, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + o), d));
    }
  }
}

QF_AVX512 void accumulate(const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                          int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept {
  int64_t t = 0;
  for (; t + 4 <= tokens; t += 4) {
    tokens_all<4>(wt, k, ldw, x + t * ldx, ldx, o0, o1, y + t * ldy, ldy);
  }
  switch (tokens - t) {
    case 3:
      return tokens_all<3>(wt, k, ldw, x + t * ldx, ldx, o0, o1, y + t * ldy, ldy);
    case 2:
      return tokens_all<2>(wt, k, ldw, x + t * ldx, ldx, o0, o1, y + t * ldy, ldy);
    case 1:
      return tokens_all<1>(wt, k, ldw, x + t * ldx, ldx, o0, o1, y + t * ldy, ldy);
    default:
      return;
  }
}

}  // namespace qforge::plugins::gptq::cpu::avx512
#endif
