// AVX-512 bodies of cpu/kernels.hpp, 16 output lanes (two GEMM words) per vector; bit-identical
// to the scalar path (kernels.hpp says why). Compiled everywhere, chosen only on a CPU with
// AVX-512F; what is left of a range goes through the AVX2 bodies (which AVX-512F implies).
#if defined(__x86_64__) || defined(__i386__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized
// flags inside the header (as gptq's kernels_avx512.cpp found).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>

#include "awq_pack.hpp"
#include "cpu/kernels.hpp"

#define QF_AVX512 __attribute__((target("avx512f,avx2")))

namespace qforge::plugins::awq::cpu::avx512 {

QF_AVX512 void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0,
                                int64_t o1, float* wt, int64_t ldw) noexcept {
  // Lanes 0-7 read word c, lanes 8-15 word c + 1, each lane j % 8 shifted to its nibble
  // kAwqReverseOrder[j % 8] (Note [AWQ pack order]).
  const __m512i shifts =
      _mm512_setr_epi32(4 * kAwqReverseOrder[0], 4 * kAwqReverseOrder[1], 4 * kAwqReverseOrder[2],
                        4 * kAwqReverseOrder[3], 4 * kAwqReverseOrder[4], 4 * kAwqReverseOrder[5],
                        4 * kAwqReverseOrder[6], 4 * kAwqReverseOrder[7], 4 * kAwqReverseOrder[0],
                        4 * kAwqReverseOrder[1], 4 * kAwqReverseOrder[2], 4 * kAwqReverseOrder[3],
                        4 * kAwqReverseOrder[4], 4 * kAwqReverseOrder[5], 4 * kAwqReverseOrder[6],
                        4 * kAwqReverseOrder[7]);
  const __m512i mask = _mm512_set1_epi32(0xF);
  const int64_t row_words = w.out / kPackNum;
  if (o0 % kPackNum != 0) return avx2::dequantize_block(w, i0, i1, o0, o1, wt, ldw);
  const int64_t vec_end = o0 + (o1 - o0) / 16 * 16;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = i / w.group_size;
    const int32_t* z = w.zeros + g * w.out;
    const float* s = w.scales + g * w.out;
    const int32_t* words = w.qweight + i * row_words;
    float* row = wt + (i - i0) * ldw - o0;
    for (int64_t o = o0; o < vec_end; o += 16) {
      const __m512i word =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(words[o / kPackNum])),
                             _mm256_set1_epi32(words[o / kPackNum + 1]), 1);
      const __m512i code = _mm512_and_si512(_mm512_srlv_epi32(word, shifts), mask);
      const __m512i zero = _mm512_loadu_si512(z + o);
      const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(code, zero));
      _mm512_storeu_ps(row + o, _mm512_mul_ps(_mm512_loadu_ps(s + o), d));
    }
  }
  if (vec_end < o1) {
    avx2::dequantize_block(w, i0, i1, vec_end, o1, wt + (vec_end - o0), ldw);
  }
}

QF_AVX512 void accumulate(const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                          int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept {
  const int64_t vec_end = o0 + (o1 - o0) / 16 * 16;
  for (int64_t t = 0; t < tokens; ++t) {
    float* yr = y + t * ldy;
    const float* xr = x + t * ldx;
    for (int64_t o = o0; o < vec_end; o += 16) {
      __m512 a = _mm512_loadu_ps(yr + o);
      for (int64_t i = 0; i < k; ++i) {
        // Multiply, round, then add: the scalar path's two roundings (no FMA).
        a = _mm512_add_ps(
            a, _mm512_mul_ps(_mm512_set1_ps(xr[i]), _mm512_loadu_ps(wt + i * ldw + (o - o0))));
      }
      _mm512_storeu_ps(yr + o, a);
    }
  }
  if (vec_end < o1) {
    avx2::accumulate(wt + (vec_end - o0), k, ldw, x, ldx, tokens, vec_end, o1, y, ldy);
  }
}

}  // namespace qforge::plugins::awq::cpu::avx512
#endif
