// AVX-512 VNNI int8 product. vpdpbusd multiplies *unsigned* bytes by signed bytes, so the
// activations are offset by +128 (x ^ 0x80 reads as the unsigned byte x + 128) and the excess
// 128 * sum_k w[o, k] is subtracted again; that sum comes from the same instruction with a
// vector of 128s. Integer arithmetic throughout, so the result is the exact int32 sum, equal to
// the scalar reference. Tails use masked loads: a masked-off weight byte is 0 and contributes
// nothing whatever the activation byte. See linear_4bit_avx2.cpp for the header wrapping.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "cpu/int8.hpp"

#define QF_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

namespace qforge::plugins::bnb::cpu {
namespace {

// R activation rows against one weight row; `comp` also returns 128 * sum_k w[k].
template <int R>
QF_VNNI inline void dot_rows(const int8_t* const* x, const int8_t* w, int64_t in, int32_t* out,
                             int32_t* comp) noexcept {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i a[R];
  for (int r = 0; r < R; ++r) a[r] = _mm512_setzero_si512();
  __m512i c = _mm512_setzero_si512();
  int64_t k = 0;
  for (; k + 64 <= in; k += 64) {
    const __m512i wv = _mm512_loadu_si512(w + k);
    for (int r = 0; r < R; ++r) {
      a[r] = _mm512_dpbusd_epi32(a[r], _mm512_xor_si512(_mm512_loadu_si512(x[r] + k), flip), wv);
    }
    if (comp != nullptr) c = _mm512_dpbusd_epi32(c, flip, wv);
  }
  if (k < in) {
    const __mmask64 mask = _cvtu64_mask64(~uint64_t{0} >> (64 - (in - k)));
    const __m512i wv = _mm512_maskz_loadu_epi8(mask, w + k);
    for (int r = 0; r < R; ++r) {
      a[r] = _mm512_dpbusd_epi32(
          a[r], _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, x[r] + k), flip), wv);
    }
    if (comp != nullptr) c = _mm512_dpbusd_epi32(c, flip, wv);
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_epi32(a[r]);
  if (comp != nullptr) *comp = _mm512_reduce_add_epi32(c);
}

}  // namespace

QF_VNNI void gemm_int8_avx512_vnni(const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w,
                                   int64_t in, int64_t o_begin, int64_t o_end, int32_t* acc,
                                   int64_t ldacc) noexcept {
  for (int64_t o = o_begin; o < o_end; ++o) {
    const int8_t* wr = w + o * in;
    int32_t comp = 0;
    int32_t sums[4];
    const int8_t* x[4];
    int64_t m = 0;
    for (; m + 4 <= rows; m += 4) {
      for (int r = 0; r < 4; ++r) x[r] = xq + (m + r) * ldq;
      dot_rows<4>(x, wr, in, sums, m == 0 ? &comp : nullptr);
      for (int r = 0; r < 4; ++r) acc[(m + r) * ldacc + o] = sums[r] - comp;
    }
    for (; m < rows; ++m) {
      x[0] = xq + m * ldq;
      dot_rows<1>(x, wr, in, sums, m < 4 ? &comp : nullptr);
      acc[m * ldacc + o] = sums[0] - comp;
    }
  }
}

}  // namespace qforge::plugins::bnb::cpu
