// AVX2 bodies of cpu/kernels.hpp, 8 output lanes per vector; bit-identical to the scalar path
// (kernels.hpp says why).
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <algorithm>

#include "awq_pack.hpp"
#include "cpu/kernels.hpp"

#define QF_AVX2 __attribute__((target("avx2")))

namespace qforge::plugins::awq::cpu::avx2 {

QF_AVX2 void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0, int64_t o1,
                              float* wt, int64_t ldw) noexcept {
  // One word holds outputs 8c..8c+7; lane j needs nibble kAwqReverseOrder[j] (Note [AWQ pack
  // order]), so a per-lane variable shift puts the eight codes in output order at once.
  const __m256i shifts =
      _mm256_setr_epi32(4 * kAwqReverseOrder[0], 4 * kAwqReverseOrder[1], 4 * kAwqReverseOrder[2],
                        4 * kAwqReverseOrder[3], 4 * kAwqReverseOrder[4], 4 * kAwqReverseOrder[5],
                        4 * kAwqReverseOrder[6], 4 * kAwqReverseOrder[7]);
  const __m256i mask = _mm256_set1_epi32(0xF);
  const int64_t row_words = w.out / kPackNum;
  // Vector lanes must start on a word: an unaligned start is done by the scalar path.
  const int64_t head =
      (o0 % kPackNum == 0) ? o0 : std::min<int64_t>(o1, o0 - o0 % kPackNum + kPackNum);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = i / w.group_size;
    const int32_t* z = w.zeros + g * w.out;
    const float* s = w.scales + g * w.out;
    const int32_t* words = w.qweight + i * row_words;
    float* row = wt + (i - i0) * ldw - o0;
    if (head > o0) scalar::dequantize_block(w, i, i + 1, o0, head, row + o0, ldw);
    int64_t o = head;
    for (; o + kPackNum <= o1; o += kPackNum) {
      const __m256i word = _mm256_set1_epi32(words[o / kPackNum]);
      const __m256i code = _mm256_and_si256(_mm256_srlv_epi32(word, shifts), mask);
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
  // Whole 16-output strips of four tokens at a time; what is left goes through the one-token
  // loop below.
  const int64_t strips_end = o0 + (o1 - o0) / 16 * 16;
  for (; t0 + 4 <= tokens && strips_end > o0; t0 += 4) {
    for (int64_t o = o0; o < strips_end; o += 16) {
      tokens4_x16(wt + (o - o0), k, ldw, x + t0 * ldx, ldx, y + t0 * ldy + o, ldy);
    }
    if (strips_end < o1) {
      scalar::accumulate(wt + (strips_end - o0), k, ldw, x + t0 * ldx, ldx, 4, strips_end, o1,
                         y + t0 * ldy, ldy);
    }
  }
  for (int64_t t = t0; t < tokens; ++t) {
    float* yr = y + t * ldy;
    const float* xr = x + t * ldx;
    int64_t o = o0;
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

}  // namespace qforge::plugins::awq::cpu::avx2
#endif
