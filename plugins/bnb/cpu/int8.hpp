// CPU kernels of LLM.int8 (bitsandbytes 8-bit, FORMATS.md §2.3) on raw pointers: row-wise
// absmax quantization, dequantization, activation quantization with outlier columns, and the
// int8 x int8 -> int32 product. Plain functions, callable without the plugin ABI (the bench
// helper and tests do).
//
// Rounding follows bitsandbytes' PyTorch path bit for bit: scale = 127.0f / absmax in float32,
// code = round-half-even(v * scale) in float32. A zero absmax (an all-zero row) gives codes 0
// and stores 0 (docs/bnb-int8.md).
//
// ISA variants of the int8 product: scalar (the reference), AVX2 (int16 widening + vpmaddwd),
// AVX-512 VNNI (vpdpbusd with a +128 activation offset and a per-row compensation) and
// AMX-INT8 (tdpbssd on 16x64 tiles). All give the exact int32 sums, so every variant equals
// the scalar one. Chosen at run time from the CPU's features or forced with
// QFORGE_BNB_KERNEL=scalar|avx2|avx512_vnni|amx (an unsupported or unknown choice falls back to
// the best supported one; "avx512" selects avx512_vnni for the 8-bit kernels).
#pragma once

#include <cstdint>

#include "cpu/kernels.hpp"  // Dense

namespace qforge::plugins::bnb::cpu {

// bitsandbytes' literal for 1/127 (int8_vectorwise_dequant), as float32.
inline constexpr float kInt8Dequant = 7.874015718698502e-3f;
// 1 / (127 * 127), bitsandbytes' MM_DEQUANT_CONST (csrc/kernels.cu).
inline constexpr float kMmDequant = 6.200012e-05f;

// round-half-even(y) as an int8 code for |y| <= 127 plus rounding (every code the quantizers
// make): adding and subtracting 1.5 * 2^23 rounds to an integer in the current (nearest-even)
// mode without a libm call, so the loops vectorize; NaN (0 * Inf) gives 0.
inline int8_t round_to_code(float y) noexcept {
  constexpr float kMagic = 12582912.0f;
  const float r = (y + kMagic) - kMagic;
  if (!(r == r)) return 0;
  return static_cast<int8_t>(r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r));
}

// The factor a row is multiplied by before rounding: bitsandbytes' CPU path writes
// `A * (127.0 / row_stats)`, and PyTorch evaluates `scalar / tensor` as
// `tensor.reciprocal() * scalar`: two roundings, not a correctly rounded 127 / absmax. A tie
// (|code| + 0.5) lands on the other side for ~1 element in 5000 otherwise (found by the
// byte comparison, tests/reference/bnb8).
inline float int8_quant_scale(float absmax) noexcept { return (1.0f / absmax) * 127.0f; }

enum class Int8Isa { kScalar, kAvx2, kAvx512Vnni, kAmx };

const char* int8_isa_name(Int8Isa isa) noexcept;
// Does this CPU (and, for AMX, the kernel's permission for tile data) run `isa`?
bool int8_isa_supported(Int8Isa isa) noexcept;
Int8Isa select_int8_isa() noexcept;

// ------------------------------------------------------------------ quantize / dequantize

// Quantizes one row of n finite values: returns absmax (float32 of max |v|) and writes codes.
// The caller rounds the values to float16 first when bitsandbytes does (weights).
float quantize_row_int8(const float* v, int64_t n, int8_t* codes) noexcept;

// Int8Params' weight quantization of rows [row_begin, row_end) of a contiguous row-major dense
// weight (row r at src + r * cols elements of `kind`): each value is cast to float16 first,
// then scb[r] = absmax and codes as quantize_row_int8. Stops at the first row holding a value
// that is not finite after the cast (NaN, Inf, or beyond float16's range) and returns its index
// (that row is not written), or row_end. Bit-identical on every ISA (AVX2 and up use F16C for
// the cast, which rounds like f32_to_f16).
int64_t quantize_dense_int8(Int8Isa isa, Dense kind, const void* src, int64_t cols,
                            int64_t row_begin, int64_t row_end, int8_t* codes, float* scb) noexcept;
int64_t quantize_dense_int8_scalar(Dense kind, const void* src, int64_t cols, int64_t row_begin,
                                   int64_t row_end, int8_t* codes, float* scb) noexcept;
int64_t quantize_dense_int8_avx2(Dense kind, const void* src, int64_t cols, int64_t row_begin,
                                 int64_t row_end, int8_t* codes, float* scb) noexcept;

// out[k] = (float(codes[k]) * scb) * kInt8Dequant for k < n (bitsandbytes' order).
void dequantize_row_int8(const int8_t* codes, float scb, int64_t n, float* out) noexcept;

// Activation quantization of LLM.int8 for `rows` rows of `in` float16-rounded values (row m at
// xh + m * in). Column c is an outlier when some row holds |x| >= threshold (threshold > 0;
// threshold <= 0 means none): outlier[c] = 1. Each row's scale is the absmax of its elements
// below the threshold (bitsandbytes zeroes outlier *elements* before the row absmax), and the
// codes of outlier columns are 0. Codes go to xq + m * ldq (ldq >= in). Returns the number of
// outlier columns.
int64_t quantize_activations_int8(const float* xh, int64_t rows, int64_t in, float threshold,
                                  int8_t* xq, int64_t ldq, float* row_scale,
                                  uint8_t* outlier) noexcept;

// Dequantizes rows [row_begin, row_end) into a dense row-major weight of `kind` (row r at
// out + r * cols elements), each value dequantize_row_int8's float32 rounded to nearest even.
// Bit-identical on every ISA.
void dequantize_dense_int8(Int8Isa isa, const int8_t* codes, const float* scb, int64_t cols,
                           int64_t row_begin, int64_t row_end, Dense kind, void* out) noexcept;
void dequantize_dense_int8_scalar(const int8_t* codes, const float* scb, int64_t cols,
                                  int64_t row_begin, int64_t row_end, Dense kind,
                                  void* out) noexcept;
void dequantize_dense_int8_avx2(const int8_t* codes, const float* scb, int64_t cols,
                                int64_t row_begin, int64_t row_end, Dense kind, void* out) noexcept;

// ------------------------------------------------------------------ int8 product

// acc[m * ldacc + o] = sum_k xq[m * ldq + k] * w[o * in + k] (exact int32) for m in [0, rows),
// o in [o_begin, o_end). Disjoint output ranges may run concurrently.
void gemm_int8(Int8Isa isa, const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w,
               int64_t in, int64_t o_begin, int64_t o_end, int32_t* acc, int64_t ldacc);
void gemm_int8_scalar(const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w, int64_t in,
                      int64_t o_begin, int64_t o_end, int32_t* acc, int64_t ldacc) noexcept;
void gemm_int8_avx2(const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w, int64_t in,
                    int64_t o_begin, int64_t o_end, int32_t* acc, int64_t ldacc) noexcept;
void gemm_int8_avx512_vnni(const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w, int64_t in,
                           int64_t o_begin, int64_t o_end, int32_t* acc, int64_t ldacc) noexcept;
// Allocates padded copies of x and of the weight tiles (it is not noexcept).
void gemm_int8_amx(const int8_t* xq, int64_t rows, int64_t ldq, const int8_t* w, int64_t in,
                   int64_t o_begin, int64_t o_end, int32_t* acc, int64_t ldacc);

}  // namespace qforge::plugins::bnb::cpu
