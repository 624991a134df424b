// AVX2 bodies of cpu/kernels.hpp, 8 output lanes per vector; bit-identical to the scalar path
// (kernels.hpp says why). 3-bit weights, whose values straddle words, take the scalar unpack.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "cpu/kernels.hpp"

#define QF_AVX2 __attribute__((target("avx2")))

namespace qforge::plugins::gptq::cpu::avx2 {

QF_AVX2 void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0, int64_t o1,
                              float* wt, int64_t ldw) noexcept {
  if (w.bits == 3) return scalar::dequantize_block(w, i0, i1, o0, o1, wt, ldw);
  const __m256i mask = _mm256_set1_epi32((1 << w.bits) - 1);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = w.g_idx[i];
    const int32_t* z = w.zeros + g * w.out;
    const float* s = w.scales + g * w.out;
    const int32_t* words = w.qweight + (i * w.bits / 32) * w.out;
    const __m128i shift = _mm_cvtsi32_si128(static_cast<int>((i * w.bits) % 32));
    float* row = wt + (i - i0) * ldw - o0;
    int64_t o = o0;
    for (; o + 8 <= o1; o += 8) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + o));
      const __m256i code = _mm256_and_si256(_mm256_srl_epi32(v, shift), mask);
      const __m256i zero = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(z + o));
      const __m256 d = _mm256_cvtepi32_ps(_mm256_sub_epi32(code, zero));
      _mm256_storeu_ps(row + o, _mm256_mul_ps(_mm256_loadu_ps(s + o), d));
    }
    if (o < o1) scalar::dequantize_block(w, i, i + 1, o, o1, row + o, ldw);
  }
}

namespace {

// Four tokens by two vectors of outputs: each weight load feeds four sums (a GEMM reads the
// dequantized block once per four tokens instead of once per token).
QF_AVX2 inline void tokens4_x16(const float* wt, int64_t k, int64_t ldw, const float* x,
                                int64_t ldx, float* y, int64_t ldy) {
  __m256 a[4][2];
  for (int t = 0; t < 4; ++t) {
    a[t][0] = _mm256_loadu_ps(y + t * ldy);
    a[t][1] = _mm256_loadu_ps(y + t * ldy + 8);
  }
  for (int64_t i = 0; i < k; ++i) {
    const __m256 w0 = _mm256_loadu_ps(wt + i * ldw);
    const __m256 w1 = _mm256_loadu_ps(wt + i * ldw + 8);
    for (int t = 0; t < 4; ++t) {
      const __m256 xi = _mm256_set1_ps(x[t * ldx + i]);
      a[t][0] = _mm256_add_ps(a[t][0], _mm256_mul_ps(xi, w0));
      a[t][1] = _mm256_add_ps(a[t][1], _mm256_mul_ps(xi, w1));
    }
  }
  for (int t = 0; t < 4; ++t) {
    _mm256_storeu_ps(y + t * ldy, a[t][0]);
    _mm256_storeu_ps(y + t * ldy + 8, a[t][1]);
  }
}

}  // namespace

QF_AVX2 void accumulate(const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                        int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept {
  int64_t t0 = 0;
  // Whole 16-output strips of four tokens at a time; what is left (outputs past the last strip,
  // tokens past the last four) goes through the one-token loop below.
  const int64_t strips_end = o0 + (o1 - o0) / 16 * 16;
  for (; t0 + 4 <= tokens && strips_end > o0; t0 += 4) {
    for (int64_t o = o0; o < strips_end; o += 16) {
      tokens4_x16(wt + (o - o0), k, ldw, x + t0 * ldx, ldx, y + t0 * ldy + o, ldy);
    }
    if (strips_end < o1) {
      accumulate(wt + (strips_end - o0), k, ldw, x + t0 * ldx, ldx, 4, strips_end, o1, y + t0 * ldy,
                 ldy);
    }
  }
  for (int64_t t = t0; t < tokens; ++t) {
    float* yr = y + t * ldy;
    const float* xr = x + t * ldx;
    int64_t o = o0;
    // Four vectors of outputs stay in registers over the whole k loop.
    for (; o + 32 <= o1; o += 32) {
      __m256 a0 = _mm256_loadu_ps(yr + o), a1 = _mm256_loadu_ps(yr + o + 8);
      __m256 a2 = _mm256_loadu_ps(yr + o + 16), a3 = _mm256_loadu_ps(yr + o + 24);
      for (int64_t i = 0; i < k; ++i) {
        const __m256 xi = _mm256_set1_ps(xr[i]);
        const float* wr = wt + i * ldw + (o - o0);
        a0 = _mm256_add_ps(a0, _mm256_mul_ps(xi, _mm256_loadu_ps(wr)));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(xi, _mm256_loadu_ps(wr + 8)));
        a2 = _mm256_add_ps(a2, _mm256_mul_ps(xi, _mm256_loadu_ps(wr + 16)));
        a3 = _mm256_add_ps(a3, _mm256_mul_ps(xi, _mm256_loadu_ps(wr + 24)));
      }
      _mm256_storeu_ps(yr + o, a0);
      _mm256_storeu_ps(yr + o + 8, a1);
      _mm256_storeu_ps(yr + o + 16, a2);
      _mm256_storeu_ps(yr + o + 24, a3);
    }
    for (; o + 8 <= o1; o += 8) {
      __m256 a = _mm256_loadu_ps(yr + o);
      for (int64_t i = 0; i < k; ++i) {
        a = _mm256_add_ps(
            a, _mm256_mul_ps(_mm256_set1_ps(xr[i]), _mm256_loadu_ps(wt + i * ldw + (o - o0))));
      }
      _mm256_storeu_ps(yr + o, a);
    }
    if (o < o1) scalar::accumulate(wt + (o - o0), k, ldw, xr, ldx, 1, o, o1, yr, ldy);
  }
}

namespace {

// Outputs [o, o + 8 * kVecs) of cpu::gemv: the accumulators stay in registers over the inputs,
// a group's zeros and scales are reloaded only when g_idx changes, and the word row a few rows
// ahead is prefetched (rows are `out` words apart, too far for the hardware's next-line guess).
template <int kVecs>
QF_AVX2 inline void gemv_strip(const PackedMatrix& w, int64_t i0, int64_t i1, const float* x,
                               int64_t o, float* y) {
  const __m256i mask = _mm256_set1_epi32((1 << w.bits) - 1);
  __m256 acc[kVecs], scale[kVecs];
  __m256i zero[kVecs];
  for (int v = 0; v < kVecs; ++v) {
    acc[v] = _mm256_loadu_ps(y + o + 8 * v);
    scale[v] = _mm256_setzero_ps();
    zero[v] = _mm256_setzero_si256();
  }
  const int64_t rows = w.in * w.bits / 32;
  int64_t last = -1;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = w.g_idx[i];
    if (g != last) {
      last = g;
      for (int v = 0; v < kVecs; ++v) {
        zero[v] =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.zeros + g * w.out + o + 8 * v));
        scale[v] = _mm256_loadu_ps(w.scales + g * w.out + o + 8 * v);
      }
    }
    const int64_t bit = i * w.bits;
    const int32_t* words = w.qweight + (bit / 32) * w.out + o;
    if (bit % 32 == 0 && bit / 32 + 4 < rows) {
      _mm_prefetch(reinterpret_cast<const char*>(words + 4 * w.out), _MM_HINT_T0);
    }
    const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(bit % 32));
    const __m256 xi = _mm256_set1_ps(x[i]);
    for (int v = 0; v < kVecs; ++v) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + 8 * v));
      const __m256i code = _mm256_and_si256(_mm256_srl_epi32(raw, shift), mask);
      const __m256 weight =
          _mm256_mul_ps(scale[v], _mm256_cvtepi32_ps(_mm256_sub_epi32(code, zero[v])));
      acc[v] = _mm256_add_ps(acc[v], _mm256_mul_ps(xi, weight));
    }
  }
  for (int v = 0; v < kVecs; ++v) _mm256_storeu_ps(y + o + 8 * v, acc[v]);
}

}  // namespace

QF_AVX2 void gemv(const PackedMatrix& w, int64_t i0, int64_t i1, const float* x, int64_t o0,
                  int64_t o1, float* y) noexcept {
  if (w.bits == 3) return scalar::gemv(w, i0, i1, x, o0, o1, y);
  int64_t o = o0;
  for (; o + 32 <= o1; o += 32) gemv_strip<4>(w, i0, i1, x, o, y);
  for (; o + 8 <= o1; o += 8) gemv_strip<1>(w, i0, i1, x, o, y);
  if (o < o1) scalar::gemv(w, i0, i1, x, o, o1, y);
}

}  // namespace qforge::plugins::gptq::cpu::avx2
#endif
