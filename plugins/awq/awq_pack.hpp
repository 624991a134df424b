// AutoAWQ's int32 packing of 4-bit values (FORMATS.md §2.5) as plain functions on raw arrays.
//
// Note [AWQ pack order]
// GEMM (awq/modules/linear/gemm.py) packs along the OUTPUT dimension, eight outputs per word,
// interleaved: nibble slot k (bits 4k..4k+3) of word c holds column 8c + kAwqOrder[k]; reading
// column 8c + j takes slot kAwqReverseOrder[j]. qweight [I, O/8] and qzeros [G, O/8] use the
// same order; zeros are stored as they are (no "- 1" as in GPTQ v1).
// GEMV (awq/modules/linear/gemv.py) packs along the INPUT dimension in natural order: slot k of
// qweight word (o, c) holds input 8c + k of output o, [O, I/8]; slot k of qzeros word (o, c)
// holds group 8c + k, [O, width] with width = gemv_zeros_width(I, group_size), the slots past
// the last group 0; scales are [O, width * 8], the columns past the last group 0.
#pragma once

#include <cstdint>

namespace qforge::plugins::awq {

inline constexpr int kPackNum = 8;  // 4-bit codes per int32
inline constexpr int kAwqOrder[kPackNum] = {0, 2, 4, 6, 1, 3, 5, 7};
inline constexpr int kAwqReverseOrder[kPackNum] = {0, 4, 1, 5, 2, 6, 3, 7};

// GEMM order: values [rows, cols] (each < 16) to words [rows, cols / 8]; cols % 8 == 0.
void pack_gemm(const uint8_t* values, int64_t rows, int64_t cols, int32_t* words) noexcept;
void unpack_gemm(const int32_t* words, int64_t rows, int64_t cols, uint8_t* values) noexcept;
// The value of column `col` in a GEMM-ordered row of words.
inline uint32_t gemm_value(const int32_t* row_words, int64_t col) noexcept {
  const auto word = static_cast<uint32_t>(row_words[col / kPackNum]);
  return (word >> (4 * kAwqReverseOrder[col % kPackNum])) & 0xFu;
}

// AutoAWQ's calculate_zeros_width: ceil(ceil(I / g / 8) / m) * m with m = 1 for g >= 128, 2 for
// 64, 4 for 32 (I / g rounded down, as AutoAWQ's `//`). Returns 0 for a group size AutoAWQ's
// GEMV has no width for (it raises NotImplementedError).
int64_t gemv_zeros_width(int64_t in, int64_t group_size) noexcept;

// GEMV qweight: codes [in, out] (input-major, as everywhere in this plugin) to words [out, in/8].
void pack_gemv_qweight(const uint8_t* codes, int64_t in, int64_t out, int32_t* words) noexcept;
void unpack_gemv_qweight(const int32_t* words, int64_t in, int64_t out, uint8_t* codes) noexcept;
// GEMV qzeros: zeros [groups, out] to words [out, width] (slots past the last group stay 0).
void pack_gemv_qzeros(const uint8_t* zeros, int64_t groups, int64_t out, int64_t width,
                      int32_t* words) noexcept;
void unpack_gemv_qzeros(const int32_t* words, int64_t groups, int64_t out, int64_t width,
                        uint8_t* zeros) noexcept;

// A GEMV qweight [out, in/8] rewritten as GEMM words [in, out/8] (what the CPU kernels read).
void gemv_to_gemm_qweight(const int32_t* gemv, int64_t in, int64_t out, int32_t* gemm) noexcept;

}  // namespace qforge::plugins::awq
