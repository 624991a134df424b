// The awq GPU kernels behind a plain C++ interface: no CUDA type crosses it, so awq_device.cpp
// compiles with the ordinary C++ compiler and the plugin builds the same with or without nvcc.
//
// Every pointer is a device pointer. Every function enqueues work on `stream` (the host's
// borrowed cudaStream_t; nullptr = default stream) and returns "" on success or the runtime's
// message naming the failed call. Nothing here allocates device memory (the ABI forbids it) or
// synchronizes.
//
// Dequantize forms each weight as the CPU kernels do (cpu/kernels.hpp): one float32 product
// scale * float(code - zero), then rounded once to the output dtype, so its output is the CPU's
// bit for bit. The linear forward uses those same weight values; its fp32 sums run in another
// order than the CPU's, so it matches the CPU forward within float tolerance only.
#pragma once

#include <cstdint>
#include <string>

namespace qforge::plugins::awq::gpu {

enum class Float : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// One packed AWQ Linear (FORMATS.md §2.5, Note [AWQ pack order] in awq_pack.hpp), I = in,
// O = out, G = groups = I / group_size, 4-bit codes, zeros stored as they are (no "- 1"):
//   gemv == false (GEMM): qweight I32 [I, O/8], qzeros I32 [G, O/8], nibble slot k of a word
//     holds column 8c + order[k], order = [0, 2, 4, 6, 1, 3, 5, 7]; scales [G, O].
//   gemv == true (GEMV): qweight I32 [O, I/8], slot k of word (o, c) = input 8c + k; qzeros I32
//     [O, zeros_width], slot k of word (o, c) = group 8c + k; scales [O, 8 * zeros_width].
// The host checked the shapes (check_tensors), so O % 8 == 0 and I % group_size == 0 (GEMV:
// I % 8 == 0 too).
struct Packed {
  const int32_t* qweight = nullptr;
  const int32_t* qzeros = nullptr;
  const void* scales = nullptr;
  Float scales_kind = Float::kF16;
  int64_t in = 0, out = 0, group_size = 0, groups = 0;
  bool gemv = false;
  int64_t zeros_width = 0;  // GEMV only
};

// ---------------------------------------------------------------- runtime

// Makes `device_id` current for this thread; the message says when there is no such device or
// no kernel image for it.
std::string set_device(int device_id);

// ---------------------------------------------------------------- kernels

// out[o * in + i] = scale[g][o] * float(code(i, o) - zero[g][o]), g = i / group_size, stored as
// `out_kind` (row-major [out, in], the dense nn.Linear weight).
std::string dequantize(const Packed& w, Float out_kind, void* out, void* stream);

// y[m, o] = sum_i x[m, i] * W[o, i] (+ bias[o]) for m < rows; x [rows, in] and y [rows, out]
// contiguous, bias [out] or nullptr. Meant for decode-sized rows (one pass over the weights per
// 4 tokens); correct for any count.
std::string gemv(const Packed& w, const void* x, Float x_kind, int64_t rows, const void* bias,
                 Float bias_kind, void* y, Float y_kind, void* stream);

}  // namespace qforge::plugins::awq::gpu
