// The hqq GPU kernels behind a plain C++ interface: no CUDA type crosses it, so hqq_device.cpp
// compiles with the ordinary C++ compiler and the plugin builds the same with or without nvcc.
//
// Every pointer is a device pointer unless its name says host. Every function enqueues work on
// `stream` (the host's borrowed cudaStream_t; nullptr = default stream) and returns "" on
// success or the runtime's message naming the failed call. Nothing here allocates device memory
// (the ABI forbids it); only synchronize() waits for the stream.
//
// Scope: axis-1 layers packed as 4bit_u8 or 2bit_u8 (4, 2 and 1.58 bits), hqq's common GPU
// layouts. Dequantize rounds as hqq_compute.cpp's dense_weight, op by op in the compute dtype,
// so its output is the CPU's bit for bit (NaN payloads aside); the linear kernels use those same
// weight values and differ from the CPU forward only in the order of the fp32 sums.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qforge::plugins::hqq::gpu {

enum class Float : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// One packed layer W [out, in]. hqq's BitPack packs the reshaped [numel / group, group] code
// matrix along dim 0 in 8 / bits contiguous slices, so in flat terms byte p of W_q (p < numel /
// slices) holds the code of flat element s * (numel / slices) + p at bit (slices - 1 - s) * bits.
// The group of flat element f is f / group (axis 1: groups run along W's row-major order).
struct Packed {
  const uint8_t* wq = nullptr;
  int bits = 4;  // 4 (4bit_u8) or 2 (2bit_u8)
  int64_t out = 0;
  int64_t in = 0;
  int64_t group = 0;
  // One value per group; the scale's dtype is the compute dtype every op rounds to.
  const void* scale = nullptr;
  Float scale_kind = Float::kF32;
  const void* zero = nullptr;
  Float zero_kind = Float::kF32;
};

// ---------------------------------------------------------------- runtime

// Makes `device_id` current for this thread; the message says when there is no such device or
// no kernel image for it.
std::string set_device(int device_id);
// Enqueues a device -> host copy; the bytes are there after synchronize().
std::string copy_to_host_async(void* host_dst, const void* src, size_t bytes, void* stream);
std::string synchronize(void* stream);

// ---------------------------------------------------------------- kernels

// out[f] = ((code(f) - zero[g]) * scale[g]) for every flat f of W, each op rounded to the
// scale's dtype, stored as `out_kind` (row-major [out, in]).
std::string dequantize(const Packed& w, Float out_kind, void* out, void* stream);

// y[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]) for m < rows; x [rows, in] and y [rows, out]
// contiguous, bias [out] or nullptr. W's values are dequantize's, sums in fp32. Meant for
// decode-sized rows (a pass per 8 tokens re-reads W); correct for any count.
std::string linear(const Packed& w, const void* x, Float x_kind, int64_t rows, const void* bias,
                   Float bias_kind, void* y, Float y_kind, void* stream);

}  // namespace qforge::plugins::hqq::gpu
