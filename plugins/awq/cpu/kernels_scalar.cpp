// Scalar reference bodies of cpu/kernels.hpp.
#include "awq_pack.hpp"
#include "cpu/kernels.hpp"

namespace qforge::plugins::awq::cpu::scalar {

void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0, int64_t o1,
                      float* wt, int64_t ldw) noexcept {
  const int64_t row_words = w.out / kPackNum;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = i / w.group_size;
    const int32_t* z = w.zeros + g * w.out;
    const float* s = w.scales + g * w.out;
    const int32_t* words = w.qweight + i * row_words;
    float* row = wt + (i - i0) * ldw - o0;
    for (int64_t o = o0; o < o1; ++o) {
      const auto code = static_cast<int32_t>(gemm_value(words, o));
      row[o] = s[o] * static_cast<float>(code - z[o]);
    }
  }
}

void accumulate(const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept {
  for (int64_t t = 0; t < tokens; ++t) {
    float* yr = y + t * ldy;
    const float* xr = x + t * ldx;
    for (int64_t i = 0; i < k; ++i) {
      const float xi = xr[i];
      const float* wr = wt + i * ldw - o0;
      for (int64_t o = o0; o < o1; ++o) yr[o] = yr[o] + xi * wr[o];
    }
  }
}

}  // namespace qforge::plugins::awq::cpu::scalar
