// The fp8 plugin's CUDA kernels behind a plain C++ interface: no CUDA type crosses it, so
// fp8_device.cpp compiles with the ordinary C++ compiler and the plugin builds the same with or
// without nvcc.
//
// Every pointer is a device pointer unless its name says host. Every function enqueues work on
// `stream` (the host's borrowed cudaStream_t; nullptr = default stream) and returns "" on
// success or the runtime's message naming the failed call. Nothing here allocates device memory
// (the ABI forbids it); only functions named *_sync synchronise the stream.
//
// Rounding is the CPU path's (cpu/e4m3.cpp, fp8_tensor_io.cpp), reimplemented as the same integer
// operations, so quantize and dequantize are bit-identical to it; the linear kernels differ from
// it only in the order of the fp32 sums.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

// Grid's helpers run in kernels too; nvcc needs them marked, the C++ compiler must not see it.
#ifdef __CUDACC__
#define QF_FP8_HOST_DEVICE __host__ __device__
#else
#define QF_FP8_HOST_DEVICE
#endif

namespace qforge::plugins::fp8::gpu {

enum class Float : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// How a row-major [rows, cols] weight splits into scale tiles of bm x bn (the last tiles may be
// ragged). Fine-grained: the weight_block_size; per-tensor: bm = rows, bn = cols; FBGEMM
// per-channel: bm = 1, bn = cols. The scale of element (r, c) is
// scale[(r / bm) * tile_cols() + c / bn].
struct Grid {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t bm = 1;
  int64_t bn = 1;
  QF_FP8_HOST_DEVICE int64_t tile_rows() const { return (rows + bm - 1) / bm; }
  QF_FP8_HOST_DEVICE int64_t tile_cols() const { return (cols + bn - 1) / bn; }
  QF_FP8_HOST_DEVICE int64_t tiles() const { return tile_rows() * tile_cols(); }
};

// How the linear kernels round activations to e4m3 before the product (the CPU forward's rules).
enum class ActQuant : int {
  // Fine-grained, dynamic: per token, per group of `group` input channels, s = amax / 448,
  // x -> e4m3(x / s) * s; a group of zeros stays zero.
  kDynamicGroup = 0,
  // Fine-grained, static: s = *static_scale for every element, x -> e4m3(x / s) * s.
  kStatic = 1,
  // FBGEMM: per token, xs = min(448 / min(amax, ub), 448 * 512), x -> e4m3(x * xs), the sum of
  // products multiplied by 1 / xs at the end.
  kRowCapped = 2,
};

// A quantized weight as the linear kernels read it.
struct Linear {
  const uint8_t* codes = nullptr;  // [out, in] e4m3
  const float* winv = nullptr;     // dequant multipliers, grid.tiles() values
  Grid grid;                       // rows = out, cols = in
  ActQuant act = ActQuant::kDynamicGroup;
  int64_t group = 128;                  // kDynamicGroup: channels per activation group
  const float* static_scale = nullptr;  // kStatic: device pointer to one float
  float ub = 1200.0f;                   // kRowCapped: activation_scale_ub
};

// ---------------------------------------------------------------- runtime

// Makes `device_id` current for this thread; the message says when there is no such device or
// no kernel image for it.
std::string set_device(int device_id);
// Compute capability major * 10 + minor of the current device (0 when unknown).
int compute_capability();
// Whether the native FP8 tensor-core kernel can run on the current device: compute capability
// >= 8.9 and the kernel image loaded for it was compiled for sm_89 or newer (a build for
// 80 only, JIT-compiled on an sm_90, holds an empty native kernel and must not use it).
bool native_available();
std::string copy_to_device(void* dst, const void* host_src, size_t bytes, void* stream);
// Copies device -> host and waits for the stream: the caller needs the bytes now.
std::string copy_to_host_sync(void* host_dst, const void* src, size_t bytes, void* stream);

// ---------------------------------------------------------------- quantize / dequantize

// amax[t] = max |w| over tile t of the contiguous [rows, cols] weight in `kind`; a tile holding
// NaN or Inf gets NaN (the caller reports the element). amax holds grid.tiles() floats.
std::string tile_amax(const void* w, Float kind, const Grid& grid, float* amax, void* stream);
// codes[r, c] = e4m3(w[r, c] * scale[tile of (r, c)]), saturating, round to nearest even.
std::string quantize_tiles(const void* w, Float kind, const Grid& grid, const float* scale,
                           uint8_t* codes, void* stream);
// out[r, c] = e4m3_to_float(codes[r, c]) * inv[tile of (r, c)] in `out_kind` (row-major).
std::string dequantize_tiles(const uint8_t* codes, const float* inv, const Grid& grid,
                             Float out_kind, void* out, void* stream);

// ---------------------------------------------------------------- linear

// y[m, n] = sum_k xq[m, k] * W[n, k] (+ bias[n]) for m < rows, x [rows, in] and y [rows, out]
// contiguous; bias may be nullptr. The reference kernel: every product in fp32 as the CPU forms
// it (fake-quantized x times the dequantized weight; FBGEMM: e4m3 times e4m3, both scales at the
// end), any GPU the build has code for.
std::string linear_emulated(const Linear& w, const void* x, Float x_kind, int64_t rows,
                            const void* bias, Float bias_kind, void* y, Float y_kind, void* stream);
// "" when the native kernel takes this weight, else why not (shape rules: in % 32 == 0,
// scale tiles along K a multiple of 32 wide and at most 512, the activation groups equal to
// those tiles or whole rows, 16-byte aligned codes).
std::string native_unsupported(const Linear& w);
// The same product on FP8 tensor cores (mma.sync m16n8k32 e4m3, sm_89+): e4m3 x e4m3 summed per
// K tile in fp32, each tile's sum multiplied by its activation and weight scales (block-scaled,
// as DeepSeek-V3's kernels) and accumulated in fp32. Call only when native_available() and
// native_unsupported(w) is "".
std::string linear_native(const Linear& w, const void* x, Float x_kind, int64_t rows,
                          const void* bias, Float bias_kind, void* y, Float y_kind, void* stream);

}  // namespace qforge::plugins::fp8::gpu
