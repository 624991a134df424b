// Scalar reference bodies of cpu/kernels.hpp.
#include "cpu/kernels.hpp"
#include "gptq_pack.hpp"

namespace qforge::plugins::gptq::cpu::scalar {

void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0, int64_t o1,
                      float* wt, int64_t ldw) noexcept {
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = w.g_idx[i];
    const int32_t* z = w.zeros + g * w.out;
    const float* s = w.scales + g * w.out;
    float* row = wt + (i - i0) * ldw - o0;
    for (int64_t o = o0; o < o1; ++o) {
      const auto code = static_cast<int32_t>(qweight_code(w.qweight, w.out, w.bits, i, o));
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

void gemv(const PackedMatrix& w, int64_t i0, int64_t i1, const float* x, int64_t o0, int64_t o1,
          float* y) noexcept {
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t g = w.g_idx[i];
    const int32_t* z = w.zeros + g * w.out;
    const float* s = w.scales + g * w.out;
    const float xi = x[i];
    for (int64_t o = o0; o < o1; ++o) {
      const auto code = static_cast<int32_t>(qweight_code(w.qweight, w.out, w.bits, i, o));
      const float weight = s[o] * static_cast<float>(code - z[o]);
      y[o] = y[o] + xi * weight;
    }
  }
}

}  // namespace qforge::plugins::gptq::cpu::scalar
