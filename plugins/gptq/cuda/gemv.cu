// gptq 4-bit GEMV (decode-sized x) on the GPU (gptq_cuda.hpp): W's values formed per element as
// dequantize forms them, never stored; products summed in fp32 (fmaf).
//
// A CTA owns 32 outputs (one warp's lanes: qweight word (r, o) of neighbouring outputs are
// neighbours in memory, so every load is one 128-byte line) and splits the qweight rows over its
// 8 warps; the 8 partial sums per output are added in warp order through shared memory, so the
// result does not depend on scheduling. Tokens go in passes of up to 4, kept in registers; x is
// read through the cache, the same address across a warp.
#include "cuda/device_common.cuh"

namespace qforge::plugins::gptq::gpu {
namespace {

constexpr int kLanes = 32;
constexpr int kSlices = 8;  // warps per CTA, each a slice of the qweight rows
constexpr int kMaxTokens = 4;

struct Io {
  const void* x = nullptr;
  Float xk = Float::kF32;
  const void* bias = nullptr;
  Float bk = Float::kF32;
  void* y = nullptr;
  Float yk = Float::kF32;
  int64_t m0 = 0;  // first token of this pass
  int mcount = 0;  // tokens in this pass (<= kTokens)
};

template <int kTokens>
__global__ void gemv4_kernel(Packed w, Io io) {
  __shared__ float partial[kTokens][kSlices][kLanes];
  const int lane = threadIdx.x, slice = threadIdx.y;
  const int64_t rows = w.in / 8;  // qweight rows: 8 inputs per word
  const int64_t tiles = ceil_div(w.out, kLanes);
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t o = tile * kLanes + lane;
    const bool live = o < w.out;
    float acc[kTokens];
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;
    if (live) {
      int64_t last = -1;
      float scale = 0.0f;
      int32_t zero = 0;
      for (int64_t r = slice; r < rows; r += kSlices) {
        const auto word = static_cast<uint32_t>(w.qweight[r * w.out + o]);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int64_t i = r * 8 + j;
          const int64_t g = w.g_idx[i];
          if (g != last) {
            last = g;
            if (g < 0 || g >= w.groups) {
              scale = __int_as_float(0x7FC00000);
              zero = 0;
            } else {
              scale = load_float(w.scales, g * w.out + o, w.scales_kind);
              zero = zero_of(w, g, o);
            }
          }
          const float wv = weight_value((word >> (4 * j)) & 15u, zero, scale);
#pragma unroll
          for (int t = 0; t < kTokens; ++t) {
            const float xv = t < io.mcount ? load_float(io.x, (io.m0 + t) * w.in + i, io.xk) : 0.0f;
            acc[t] = fmaf(xv, wv, acc[t]);
          }
        }
      }
    }
#pragma unroll
    for (int t = 0; t < kTokens; ++t) partial[t][slice][lane] = acc[t];
    __syncthreads();
    if (slice == 0 && live) {
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        if (t >= io.mcount) break;
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < kSlices; ++k) s += partial[t][k][lane];
        if (io.bias != nullptr) s += load_float(io.bias, o, io.bk);
        store_float_rn(io.y, (io.m0 + t) * w.out + o, io.yk, s);
      }
    }
    __syncthreads();  // partial is reused by the next tile
  }
}

}  // namespace

std::string gemv4(const Packed& w, const void* x, Float x_kind, int64_t rows, const void* bias,
                  Float bias_kind, void* y, Float y_kind, void* stream) {
  if (rows == 0 || w.out == 0) return "";
  if (w.bits != 4) return "gptq gemv4: " + std::to_string(w.bits) + "-bit weights";
  if (w.in % 8 != 0)
    return "gptq gemv4: in_features " + std::to_string(w.in) + " is not a multiple of 8";
  Io io;
  io.x = x;
  io.xk = x_kind;
  io.bias = bias;
  io.bk = bias_kind;
  io.y = y;
  io.yk = y_kind;
  const dim3 block(kLanes, kSlices);
  const unsigned grid = grid_for(w.out, kLanes);
  for (int64_t m0 = 0; m0 < rows; m0 += kMaxTokens) {
    io.m0 = m0;
    io.mcount = static_cast<int>(rows - m0 < kMaxTokens ? rows - m0 : kMaxTokens);
    // A GEMV does one token's work, not four.
    if (io.mcount == 1) {
      gemv4_kernel<1><<<grid, block, 0, as_stream(stream)>>>(w, io);
    } else {
      gemv4_kernel<kMaxTokens><<<grid, block, 0, as_stream(stream)>>>(w, io);
    }
    const std::string err = launch_error("gptq gemv4_kernel");
    if (!err.empty()) return err;
  }
  return "";
}

}  // namespace qforge::plugins::gptq::gpu
