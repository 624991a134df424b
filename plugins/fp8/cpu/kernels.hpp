// CPU kernels of the FP8 plugin on raw pointers: e4m3 encode/decode of spans, the max-magnitude
// scan a scale needs, the activation round trip, and the emulated linear's fp32 accumulation.
// Plain functions, callable without the plugin ABI (tests call them directly).
//
// Every ISA gives the same bytes as the scalar path, which is e4m3.{hpp,cpp} applied element by
// element: encode/decode are exact bit manipulations, products are single fp32 multiplies (no
// FMA: the plugin builds with -ffp-contract=off and the vector code uses no FMA intrinsic), and
// linear_accumulate sums each output in k order, with the vector lanes spanning output rows
// rather than k, so no sum is reassociated.
//
// ISA variants: scalar is the reference; AVX2 (+F16C) and AVX-512 (F, BW, VL) carry per-function
// target attributes, so one binary runs on any x86-64. select_isa picks the best the CPU has, or
// QFORGE_FP8_KERNEL=scalar|avx2|avx512 (tests; an unsupported or unknown choice falls back to the
// best supported, never to a crash).
#pragma once

#include <cstdint>

namespace qforge::plugins::fp8::cpu {

enum class Isa { kScalar, kAvx2, kAvx512 };

const char* isa_name(Isa isa) noexcept;
bool isa_supported(Isa isa) noexcept;  // does this CPU run it?
Isa select_isa() noexcept;

// The dense float formats weights and outputs come in (element i at base + i * size).
enum class Dense { kF32, kF16, kBF16 };

inline int64_t dense_size(Dense kind) noexcept { return kind == Dense::kF32 ? 4 : 2; }

// ------------------------------------------------------------------ conversions

// out[i] = e4m3_from_float(x[i]).
void encode(Isa isa, const float* x, int64_t n, uint8_t* out) noexcept;
// out[i] = e4m3_to_float(codes[i]).
void decode(Isa isa, const uint8_t* codes, int64_t n, float* out) noexcept;

// The largest |src[i]| as float32 bits without the sign (F16/BF16 widened exactly first);
// 0 for n == 0. A result >= 0x7F800000 means the span holds an Inf or a NaN: for non-negative
// floats the bit patterns order as the values do, so one integer max finds both.
uint32_t amax_bits(Isa isa, Dense kind, const void* src, int64_t n) noexcept;

// out[i] = e4m3_from_float(float(src[i]) * scale): one rounded fp32 product, then the
// saturating encode (quantize's inner loop).
void encode_scaled(Isa isa, Dense kind, const void* src, int64_t n, float scale,
                   uint8_t* out) noexcept;

// out[i] = e4m3_to_float(codes[i]) * scale, stored as `kind` (F16/BF16 rounded to nearest even
// as fp8_tensor_io's write_floats does; NaN stays NaN).
void decode_scaled(Isa isa, const uint8_t* codes, int64_t n, float scale, Dense kind,
                   void* out) noexcept;

// Activation round trips. x[i] = e4m3_to_float(e4m3_from_float(x[i] / s)) * s (DeepSeek's
// act_quant; a division, as the reference divides), in place.
void round_trip_div(Isa isa, float* x, int64_t n, float s) noexcept;
// out[i] = e4m3_to_float(e4m3_from_float(x[i] * m)) (FBGEMM's row quantize, not rescaled).
void round_trip_mul(Isa isa, const float* x, int64_t n, float m, float* out) noexcept;

// ------------------------------------------------------------------ linear

// An e4m3 [rows, cols] matrix whose element (r, c) means e4m3_to_float(code) * scale(r, c), with
// scale(r, c) = scales[(r / bm) * scale_cols + c / bn] (one float for bm = rows, bn = cols).
struct CodeMatrix {
  const uint8_t* codes = nullptr;
  int64_t rows = 0, cols = 0;
  const float* scales = nullptr;
  int64_t bm = 1, bn = 1, scale_cols = 1;

  float scale(int64_t r, int64_t c) const noexcept {
    return scales[(r / bm) * scale_cols + c / bn];
  }
};

// y[t * ldy + o] = sum over k = 0, 1, ... of x[t * cols + k] * (decoded(o, k) * scale(o, k)), the
// weight product rounded to fp32 first and the sum accumulated in k order from +0, for tokens t
// in [0, tokens) and rows o in [row_begin, row_end). Disjoint row ranges may run concurrently.
void linear_accumulate(Isa isa, const CodeMatrix& w, const float* x, int64_t tokens,
                       int64_t row_begin, int64_t row_end, float* y, int64_t ldy);

// The per-ISA bodies behind the dispatchers (tests call them to pin one path).
namespace avx2 {
void encode(const float* x, int64_t n, uint8_t* out) noexcept;
void decode(const uint8_t* codes, int64_t n, float* out) noexcept;
uint32_t amax_bits(Dense kind, const void* src, int64_t n) noexcept;
void encode_scaled(Dense kind, const void* src, int64_t n, float scale, uint8_t* out) noexcept;
void decode_scaled(const uint8_t* codes, int64_t n, float scale, Dense kind, void* out) noexcept;
void round_trip_div(float* x, int64_t n, float s) noexcept;
void round_trip_mul(const float* x, int64_t n, float m, float* out) noexcept;
void linear_accumulate(const CodeMatrix& w, const float* x, int64_t tokens, int64_t row_begin,
                       int64_t row_end, float* y, int64_t ldy);
}  // namespace avx2
namespace avx512 {
void encode(const float* x, int64_t n, uint8_t* out) noexcept;
void decode(const uint8_t* codes, int64_t n, float* out) noexcept;
uint32_t amax_bits(Dense kind, const void* src, int64_t n) noexcept;
void encode_scaled(Dense kind, const void* src, int64_t n, float scale, uint8_t* out) noexcept;
void decode_scaled(const uint8_t* codes, int64_t n, float scale, Dense kind, void* out) noexcept;
void round_trip_div(float* x, int64_t n, float s) noexcept;
void round_trip_mul(const float* x, int64_t n, float m, float* out) noexcept;
void linear_accumulate(const CodeMatrix& w, const float* x, int64_t tokens, int64_t row_begin,
                       int64_t row_end, float* y, int64_t ldy);
}  // namespace avx512
namespace scalar {
void encode(const float* x, int64_t n, uint8_t* out) noexcept;
void decode(const uint8_t* codes, int64_t n, float* out) noexcept;
uint32_t amax_bits(Dense kind, const void* src, int64_t n) noexcept;
void encode_scaled(Dense kind, const void* src, int64_t n, float scale, uint8_t* out) noexcept;
void decode_scaled(const uint8_t* codes, int64_t n, float scale, Dense kind, void* out) noexcept;
void round_trip_div(float* x, int64_t n, float s) noexcept;
void round_trip_mul(const float* x, int64_t n, float m, float* out) noexcept;
void linear_accumulate(const CodeMatrix& w, const float* x, int64_t tokens, int64_t row_begin,
                       int64_t row_end, float* y, int64_t ldy);
// F16/BF16 <-> float32 exactly as fp8_tensor_io does (the vector tails use them).
float widen(Dense kind, const void* src, int64_t i) noexcept;
void narrow(float v, Dense kind, void* dst, int64_t i) noexcept;
}  // namespace scalar

}  // namespace qforge::plugins::fp8::cpu
