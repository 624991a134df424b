// CPU kernels of the bnb 4-bit format on raw pointers: quantize a block range, dequantize,
// and y = x @ W^T (+ bias) decoding the 4-bit weight on the fly (GEMV for one row of x, GEMM
// for more). Plain functions, callable without the plugin ABI (the bench helper does).
//
// Layout (FORMATS.md §2.2): W is [out, in] flattened row-major into n = out * in elements,
// split into blocks of `blocksize` consecutive elements that cross rows; element e is nibble
// (e odd ? low : high) of byte e / 2; block b has scale absmax(b).
//
// ISA variants: scalar is the reference; AVX2 (+FMA, F16C) and AVX-512 (F, BW, VL, DQ) are compiled
// with per-function target attributes, so one binary runs on any x86-64, and are chosen at run
// time from the CPU's features, or forced with QFORGE_BNB_KERNEL=scalar|avx2|avx512 (tests).
// The vector paths need blocksize 64 and in % 64 == 0 (every real model); anything else runs
// the scalar path whatever was chosen.
#pragma once

#include <cstdint>

#include "cpu/codebook.hpp"

namespace qforge::plugins::bnb::cpu {

inline constexpr int64_t kBlock = 64;

// Per-block scales: plain float32, or double-quantized (8-bit codes into the dynamic map,
// times a float32 per `nested_blocksize` codes, plus the offset).
struct Absmax {
  const float* values = nullptr;
  const uint8_t* codes = nullptr;
  const float* nested = nullptr;
  const float* nested_map = nullptr;  // 256 entries
  float offset = 0.0f;
  int64_t nested_blocksize = 256;

  float at(int64_t block) const noexcept {
    if (values != nullptr) return values[block];
    return nested_map[codes[block]] * nested[block / nested_blocksize] + offset;
  }
};

struct Weight4 {
  const uint8_t* packed = nullptr;  // (out * in + 1) / 2 bytes
  const float* code = nullptr;      // 16 entries: the quant_map
  Absmax absmax;
  int64_t out = 0;
  int64_t in = 0;
  int64_t blocksize = kBlock;
};

enum class Isa { kScalar, kAvx2, kAvx512 };

// The dense float formats a weight is read from or written to (element e at base + e * size).
enum class Dense { kF32, kF16, kBF16 };

const char* isa_name(Isa isa) noexcept;
bool isa_supported(Isa isa) noexcept;  // does this CPU run it?
// The best supported ISA, or QFORGE_BNB_KERNEL's choice when set and supported (an
// unsupported or unknown choice falls back to the best, never to a crash).
Isa select_isa() noexcept;

// ------------------------------------------------------------------ quantize

// Quantizes blocks [block_begin, block_end) of the n-element fp32 weight `w` (contiguous,
// element e at w[e]): absmax[b] = max |w|, codes into `packed` (block b owns bytes
// [b * 32, ...), so disjoint block ranges may run concurrently). Values must be finite.
void quantize_blocks_4bit(QuantType type, const float* w, int64_t n, int64_t block_begin,
                          int64_t block_end, uint8_t* packed, float* absmax) noexcept;

// Quantizes one block of `count` <= 64 finite values into codes[0..count) (one code per
// byte), returning the block's absmax. Used by quantize_blocks_4bit and by gathers from
// strided inputs.
float quantize_block_4bit(QuantType type, const float* w, int64_t count, uint8_t* codes) noexcept;

// Quantizes whole 64-element blocks [block_begin, block_end) of a contiguous dense weight
// (element e at src + e * size), converting F16/BF16 exactly to float32 first. Stops at the
// first block holding a NaN or Inf and returns its index (its outputs are not written), or
// block_end when every block was quantized. Output bytes and absmax equal quantize_blocks_4bit
// on the float32 values bit for bit, on every ISA.
int64_t quantize_dense_4bit(Isa isa, QuantType type, Dense kind, const void* src,
                            int64_t block_begin, int64_t block_end, uint8_t* packed,
                            float* absmax) noexcept;
int64_t quantize_dense_4bit_scalar(QuantType type, Dense kind, const void* src, int64_t block_begin,
                                   int64_t block_end, uint8_t* packed, float* absmax) noexcept;
int64_t quantize_dense_4bit_avx2(QuantType type, Dense kind, const void* src, int64_t block_begin,
                                 int64_t block_end, uint8_t* packed, float* absmax) noexcept;
int64_t quantize_dense_4bit_avx512(QuantType type, Dense kind, const void* src, int64_t block_begin,
                                   int64_t block_end, uint8_t* packed, float* absmax) noexcept;

// Double quantization of `count` absmax values: offset = mean (double accumulator, rounded
// to float; see docs/bnb-4bit.md), then blocks of 256 of (absmax - offset) against the dynamic
// map. codes: count bytes; nested: ceil(count / 256) floats.
float double_quantize(const float* absmax, int64_t count, uint8_t* codes, float* nested) noexcept;

// ------------------------------------------------------------------ dequantize

// Writes elements [e_begin, e_end) of the dense fp32 weight into out[0 .. e_end - e_begin).
void dequantize_range(Isa isa, const Weight4& w, int64_t e_begin, int64_t e_end,
                      float* out) noexcept;

// Writes whole 64-element blocks [block_begin, block_end) of the dense weight as `kind` at
// `out` (element block_begin * 64 first), rounding to nearest even like write_floats. Needs
// w.blocksize == 64. `stream`: non-temporal stores, for outputs far larger than the cache
// (out must then be 64-byte aligned; the scalar path ignores it). Bit-identical on every ISA.
void dequantize_dense(Isa isa, const Weight4& w, Dense kind, int64_t block_begin, int64_t block_end,
                      void* out, bool stream) noexcept;
void dequantize_dense_scalar(const Weight4& w, Dense kind, int64_t block_begin, int64_t block_end,
                             void* out) noexcept;
void dequantize_dense_avx2(const Weight4& w, Dense kind, int64_t block_begin, int64_t block_end,
                           void* out, bool stream) noexcept;
void dequantize_dense_avx512(const Weight4& w, Dense kind, int64_t block_begin, int64_t block_end,
                             void* out, bool stream) noexcept;

// ------------------------------------------------------------------ linear

// How a kernel reads x. The vector kernels pair decoded nibbles with x without shuffling
// weights, so x is permuted once per call instead:
//  kBlock64: within every 64-element block, its 32 even elements, then its 32 odd ones (the
//            high and low nibbles of the block's 32 bytes);
//  kWord128: for AVX-512 GEMV, which loads 64 code bytes as 16 dwords and takes nibble k of
//            every dword: within every 128 elements, 8 runs of 16 where run k, lane l holds
//            element 2 * (4 l + k / 2) + (k even ? 1 : 0).
enum class XLayout { kNatural, kBlock64, kWord128 };
XLayout x_layout(Isa isa, const Weight4& w, int64_t rows) noexcept;
// Floats between rows of the prepared x: `in`, plus one cache line when there are several rows
// (rows a power of two bytes apart share one L1 set, and a GEMM reads them all at one offset).
int64_t x_stride(int64_t in, int64_t rows) noexcept;
// Writes rows of x (natural order, `in` floats each) in `layout`, row m at out + m * ldx.
void prepare_x(XLayout layout, const float* x, int64_t rows, int64_t in, int64_t ldx,
               float* out) noexcept;

// y[m * ldy + r] = sum_k W[r, k] * x[m * in + k] (+ bias[r]) for r in [row_begin, row_end)
// and m in [0, rows). x: natural order; xprep: prepare_x(x_layout(isa, w, rows), x, ..., ldx)
// or nullptr (then the scalar path runs). bias may be nullptr. Rows of y are independent, so
// disjoint row ranges may run concurrently and the result does not depend on the split.
void linear_4bit(Isa isa, const Weight4& w, const float* x, const float* xprep, int64_t ldx,
                 int64_t rows, const float* bias, float* y, int64_t ldy, int64_t row_begin,
                 int64_t row_end) noexcept;

// True when `isa`'s vector path can serve w (else linear_4bit runs scalar).
bool vector_path_applies(const Weight4& w) noexcept;

// The per-ISA kernels behind linear_4bit (exposed for the bench helper and tests).
void linear_4bit_scalar(const Weight4& w, const float* x, int64_t rows, const float* bias, float* y,
                        int64_t ldy, int64_t row_begin, int64_t row_end) noexcept;
void linear_4bit_avx2(const Weight4& w, const float* xperm, int64_t ldx, int64_t rows,
                      const float* bias, float* y, int64_t ldy, int64_t row_begin,
                      int64_t row_end) noexcept;
void linear_4bit_avx512(const Weight4& w, const float* xperm, int64_t ldx, int64_t rows,
                        const float* bias, float* y, int64_t ldy, int64_t row_begin,
                        int64_t row_end) noexcept;
// One row of x in the kWord128 layout; needs in % 128 == 0.
void gemv_4bit_avx512_words(const Weight4& w, const float* xq, const float* bias, float* y,
                            int64_t row_begin, int64_t row_end) noexcept;
void dequantize_blocks_avx2(const Weight4& w, int64_t block_begin, int64_t block_end,
                            float* out) noexcept;
void dequantize_blocks_avx512(const Weight4& w, int64_t block_begin, int64_t block_end,
                              float* out) noexcept;

}  // namespace qforge::plugins::bnb::cpu
