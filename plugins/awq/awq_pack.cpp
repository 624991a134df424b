// AutoAWQ packing (see awq_pack.hpp, Note [AWQ pack order]).
#include "awq_pack.hpp"

namespace qforge::plugins::awq {

void pack_gemm(const uint8_t* values, int64_t rows, int64_t cols, int32_t* words) noexcept {
  const int64_t wcols = cols / kPackNum;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < wcols; ++c) {
      const uint8_t* v = values + r * cols + c * kPackNum;
      uint32_t word = 0;
      for (int k = 0; k < kPackNum; ++k) word |= (v[kAwqOrder[k]] & 0xFu) << (4 * k);
      words[r * wcols + c] = static_cast<int32_t>(word);  // AutoAWQ's words are int32 views
    }
  }
}

void unpack_gemm(const int32_t* words, int64_t rows, int64_t cols, uint8_t* values) noexcept {
  const int64_t wcols = cols / kPackNum;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t col = 0; col < cols; ++col) {
      values[r * cols + col] = static_cast<uint8_t>(gemm_value(words + r * wcols, col));
    }
  }
}

int64_t gemv_zeros_width(int64_t in, int64_t group_size) noexcept {
  int64_t multiplier = 0;
  if (group_size >= 128) {
    multiplier = 1;
  } else if (group_size == 64) {
    multiplier = 2;
  } else if (group_size == 32) {
    multiplier = 4;
  } else {
    return 0;
  }
  const int64_t base = (in / group_size + kPackNum - 1) / kPackNum;
  return (base + multiplier - 1) / multiplier * multiplier;
}

void pack_gemv_qweight(const uint8_t* codes, int64_t in, int64_t out, int32_t* words) noexcept {
  const int64_t wcols = in / kPackNum;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t c = 0; c < wcols; ++c) {
      uint32_t word = 0;
      for (int k = 0; k < kPackNum; ++k) {
        word |= (codes[(c * kPackNum + k) * out + o] & 0xFu) << (4 * k);
      }
      words[o * wcols + c] = static_cast<int32_t>(word);
    }
  }
}

void unpack_gemv_qweight(const int32_t* words, int64_t in, int64_t out, uint8_t* codes) noexcept {
  const int64_t wcols = in / kPackNum;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      const auto word = static_cast<uint32_t>(words[o * wcols + i / kPackNum]);
      codes[i * out + o] = static_cast<uint8_t>((word >> (4 * (i % kPackNum))) & 0xFu);
    }
  }
}

void pack_gemv_qzeros(const uint8_t* zeros, int64_t groups, int64_t out, int64_t width,
                      int32_t* words) noexcept {
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t c = 0; c < width; ++c) {
      uint32_t word = 0;
      for (int k = 0; k < kPackNum; ++k) {
        const int64_t g = c * kPackNum + k;
        if (g < groups) word |= (zeros[g * out + o] & 0xFu) << (4 * k);
      }
      words[o * width + c] = static_cast<int32_t>(word);
    }
  }
}

void unpack_gemv_qzeros(const int32_t* words, int64_t groups, int64_t out, int64_t width,
                        uint8_t* zeros) noexcept {
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < groups && g / kPackNum < width; ++g) {
      const auto word = static_cast<uint32_t>(words[o * width + g / kPackNum]);
      zeros[g * out + o] = static_cast<uint8_t>((word >> (4 * (g % kPackNum))) & 0xFu);
    }
  }
}

void gemv_to_gemm_qweight(const int32_t* gemv, int64_t in, int64_t out, int32_t* gemm) noexcept {
  const int64_t in_words = in / kPackNum;
  const int64_t out_words = out / kPackNum;
  for (int64_t i = 0; i < in; ++i) {
    const int shift_in = 4 * static_cast<int>(i % kPackNum);
    for (int64_t c = 0; c < out_words; ++c) {
      uint32_t word = 0;
      for (int k = 0; k < kPackNum; ++k) {
        const int64_t o = c * kPackNum + kAwqOrder[k];
        const auto src = static_cast<uint32_t>(gemv[o * in_words + i / kPackNum]);
        word |= ((src >> shift_in) & 0xFu) << (4 * k);
      }
      gemm[i * out_words + c] = static_cast<int32_t>(word);
    }
  }
}

}  // namespace qforge::plugins::awq
