// The bnb GPU kernels (CUDA, and HIP through hip_compat.hpp) behind a plain C++ interface: no
// CUDA type crosses it, so bnb_device.cpp compiles with the ordinary C++ compiler and the plugin
// builds the same with or without a GPU toolchain.
//
// Every pointer is a device pointer unless its name says host. Every function enqueues work on
// `stream` (the host's borrowed cudaStream_t / hipStream_t; nullptr = default stream) and
// returns "" on success or the runtime's message naming the failed call. Nothing here allocates
// device memory (the ABI forbids it); only the functions named *_sync synchronise the stream.
//
// Formats and rounding are those of the CPU kernels in cpu/ (FORMATS.md §2.2, §2.3): quantize
// output is bit-identical to the CPU path; dequantize and linear round differently only where
// floating-point sums run in another order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qforge::plugins::bnb::gpu {

enum class Float : int { kF32 = 0, kF16 = 1, kBF16 = 2 };
enum class Code4 : int { kNf4 = 0, kFp4 = 1 };

// A 2-D view of a dense weight: element (r, c) at data + (r * row_stride + c * col_stride)
// elements. Covers row-major [out, in] and Conv1D's [in, out] read transposed.
struct Matrix {
  const void* data = nullptr;
  Float kind = Float::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;
  int64_t col_stride = 1;
};

// Per-block scales, as cpu::Absmax: float32 values, or double-quantized codes.
struct Absmax {
  const float* values = nullptr;
  const uint8_t* codes = nullptr;
  const float* nested = nullptr;
  const float* nested_map = nullptr;  // 256 entries
  float offset = 0.0f;
  int64_t nested_blocksize = 256;
};

struct Weight4 {
  const uint8_t* packed = nullptr;  // (out * in + 1) / 2 bytes
  const float* code = nullptr;      // 16 entries (the quant_map tensor)
  Absmax absmax;
  int64_t out = 0;
  int64_t in = 0;
  int64_t blocksize = 64;
};

// ---------------------------------------------------------------- runtime

// Makes `device_id` current for this thread; the message says when there is no such device.
std::string set_device(int device_id);
// Compute capability major * 10 + minor of the current device (0 when unknown).
int compute_capability();
std::string copy_to_device(void* dst, const void* host_src, size_t bytes, void* stream);
// Copies device -> host and waits for the stream: the caller needs the bytes now.
std::string copy_to_host_sync(void* host_dst, const void* src, size_t bytes, void* stream);
std::string synchronize_sync(void* stream);
std::string fill_bytes(void* dst, int value, size_t bytes, void* stream);

// ---------------------------------------------------------------- 4-bit

// Blockwise (64) 4-bit quantization of the flattened [rows, cols] view. Writes packed codes
// (when packed != nullptr) and per-block absmax (when absmax != nullptr). A block holding a NaN
// or Inf gets absmax NaN and lowers *first_bad (when not nullptr) to its index; the caller sets
// *first_bad to ~0 first (fill_bytes 0xff) and reads it back. Such a block's codes are
// meaningless.
std::string quantize_4bit(Code4 type, const Matrix& w, uint8_t* packed, float* absmax,
                          unsigned long long* first_bad, void* stream);
// Dense weight in `kind`: row-major [out, in], or [in, out] when transpose_out (Conv1D).
std::string dequantize_4bit(const Weight4& w, Float kind, bool transpose_out, void* out,
                            void* stream);
// y[m, r] = sum_k x[m, k] W[r, k] (+ bias[r]) for m < rows; x, y contiguous in x_kind; bias
// may be nullptr. rows == 1 runs the GEMV kernel, more rows the tiled GEMM kernel.
std::string linear_4bit(const Weight4& w, const void* x, Float x_kind, int64_t rows,
                        const void* bias, Float bias_kind, void* y, void* stream);

// ---------------------------------------------------------------- 8-bit (LLM.int8)

// Row-wise absmax int8 of the float16-cast weight: scb[r] = max |fp16(w[r, :])|, cb =
// round-half-even(fp16(w) * (127 / scb[r])); an all-zero row gets scb 0 and codes 0. A row
// holding a NaN or Inf gets scb NaN, which the caller checks.
std::string quantize_8bit(const Matrix& w, int8_t* cb, float* scb, void* stream);
// W = cb * scb[r] / 127 in `kind`; [out, in], or [in, out] when transpose_out.
std::string dequantize_8bit(const int8_t* cb, const float* scb, int64_t out, int64_t in, Float kind,
                            bool transpose_out, void* dst, void* stream);
// LLM.int8 forward, cpu::quantize_activations_int8's rules: columns where the float16-cast x
// has any |x| >= threshold (threshold > 0) are outliers, computed in float32 from the original
// x against the dequantized weight; the rest int8 x int8 -> int32 with per-row scales (absmax
// of the row's elements below the threshold), rescaled by rowstat * scb / 127^2, + bias.
std::string linear_8bit(const int8_t* cb, const float* scb, int64_t out, int64_t in, const void* x,
                        Float x_kind, int64_t rows, float threshold, const void* bias,
                        Float bias_kind, void* y, void* stream);

}  // namespace qforge::plugins::bnb::gpu
