// The gptq GPU kernels behind a plain C++ interface: no CUDA type crosses it, so gptq_device.cpp
// compiles with the ordinary C++ compiler and the plugin builds the same with or without nvcc.
//
// Every pointer is a device pointer unless its name says host. Every function enqueues work on
// `stream` (the host's borrowed cudaStream_t; nullptr = default stream) and returns "" on
// success or the runtime's message naming the failed call. Nothing here allocates device memory
// (the ABI forbids it) or synchronizes.
//
// Dequantize forms each weight as the CPU kernels do (cpu/kernels.hpp): one float32 product
// scale * float(code - zero), then rounded once to the output dtype, so its output is the CPU's
// bit for bit. The GEMV uses those same weight values; its fp32 sums run in another order than
// the CPU's, so it matches the CPU forward within float tolerance only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qforge::plugins::gptq::gpu {

enum class Float : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// One packed GPTQ Linear (FORMATS.md §2.4), I = in, O = out: qweight I32 [I*bits/32, O] (a bit
// stream along the input), qzeros I32 [groups, O*bits/32] (a bit stream along the output; v1
// stores zero - 1), scales [groups, O], g_idx I32 [I]. Any g_idx (act-order) is honoured; an
// index outside [0, groups) gives NaN weights instead of reading out of bounds.
struct Packed {
  const int32_t* qweight = nullptr;
  const int32_t* qzeros = nullptr;
  const void* scales = nullptr;
  Float scales_kind = Float::kF16;
  const int32_t* g_idx = nullptr;
  int64_t in = 0, out = 0, groups = 0;
  int bits = 4;     // 2, 3, 4 or 8 for dequantize; 4 for gemv
  bool v2 = false;  // checkpoint_format gptq_v2: qzeros hold the zero itself
};

// ---------------------------------------------------------------- runtime

// Makes `device_id` current for this thread; the message says when there is no such device or
// no kernel image for it.
std::string set_device(int device_id);

// ---------------------------------------------------------------- kernels

// out[o * in + i] = scale[g][o] * float(code(i, o) - zero[g][o]), g = g_idx[i], stored as
// `out_kind` (row-major [out, in], the dense nn.Linear weight).
std::string dequantize(const Packed& w, Float out_kind, void* out, void* stream);

// y[m, o] = sum_i x[m, i] * W[o, i] (+ bias[o]) for m < rows, 4-bit only; x [rows, in] and
// y [rows, out] contiguous, bias [out] or nullptr. Meant for decode-sized rows (one pass over
// the weights per 4 tokens); correct for any count.
std::string gemv4(const Packed& w, const void* x, Float x_kind, int64_t rows, const void* bias,
                  Float bias_kind, void* y, Float y_kind, void* stream);

}  // namespace qforge::plugins::gptq::gpu
