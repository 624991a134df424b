// awq linear forward for decode-sized x on the GPU (awq_cuda.hpp): W's values formed per element
// as dequantize forms them, never stored; products summed in fp32 (fmaf).
//
// GEMM layout (qweight [I, O/8], eight outputs per word): a CTA owns 256 outputs, lane l the
// eight of word column tile * 32 + l, so a warp reads one 128-byte line of a qweight row per
// input, as gptq's GEMV does. The 8 warps take contiguous slices of the inputs, so a slice loads a
// group's scales and zeros once, not every row; the 8 partial sums per output are added in warp
// order through shared memory, so the result does not depend on scheduling.
// GEMV layout (qweight [O, I/8], eight inputs per word): a warp owns one output and its lanes
// stride along the row (coalesced), then reduce by shuffles in a fixed butterfly order.
// Tokens go in passes of up to 4, kept in registers; x is read through the cache.
#include "cuda/device_common.cuh"

namespace qforge::plugins::awq::gpu {
namespace {

constexpr int kLanes = 32;
constexpr int kSlices = 8;  // warps per CTA
constexpr int kTileOutputs = kLanes * 8;
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
__global__ void gemm_layout_kernel(Packed w, Io io) {
  // [t][slice][j * 32 + lane] holds output lane * 8 + j of the tile: conflict-free on both the
  // writes (fixed j, lanes consecutive) and the reduction's reads (thread tid reads index tid).
  __shared__ float partial[kTokens][kSlices][kTileOutputs];
  const int lane = threadIdx.x, slice = threadIdx.y;
  const int64_t words = w.out / 8;
  const int64_t tiles = ceil_div(words, kLanes);
  const int64_t chunk = ceil_div(w.in, kSlices);
  const int64_t r0 = slice * chunk;
  const int64_t r1 = r0 + chunk < w.in ? r0 + chunk : w.in;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t c = tile * kLanes + lane;
    float acc[kTokens][8];
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[t][j] = 0.0f;
    }
    if (c < words) {
      int64_t next = 0;  // first input past the current group
      float scale[8];
      uint32_t zero[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) scale[j] = 0.0f, zero[j] = 0;
      for (int64_t i = r0; i < r1; ++i) {
        if (i >= next) {
          const int64_t g = i / w.group_size;
          next = (g + 1) * w.group_size;
          const auto zw = static_cast<uint32_t>(w.qzeros[g * words + c]);
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            scale[j] = load_float(w.scales, g * w.out + c * 8 + j, w.scales_kind);
            zero[j] = gemm_nibble(zw, j);
          }
        }
        const auto word = static_cast<uint32_t>(w.qweight[i * words + c]);
        float xv[kTokens];
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
          xv[t] = t < io.mcount ? load_float(io.x, (io.m0 + t) * w.in + i, io.xk) : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const float wv = weight_value(gemm_nibble(word, j), zero[j], scale[j]);
#pragma unroll
          for (int t = 0; t < kTokens; ++t) acc[t][j] = fmaf(xv[t], wv, acc[t][j]);
        }
      }
    }
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
#pragma unroll
      for (int j = 0; j < 8; ++j) partial[t][slice][j * kLanes + lane] = acc[t][j];
    }
    __syncthreads();
    const int tid = slice * kLanes + lane;
    const int64_t o = tile * kTileOutputs + (tid % kLanes) * 8 + tid / kLanes;
    if (o < w.out) {
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        if (t >= io.mcount) break;
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < kSlices; ++k) s += partial[t][k][tid];
        if (io.bias != nullptr) s += load_float(io.bias, o, io.bk);
        store_float_rn(io.y, (io.m0 + t) * w.out + o, io.yk, s);
      }
    }
    __syncthreads();  // partial is reused by the next tile
  }
}

template <int kTokens>
__global__ void gemv_layout_kernel(Packed w, Io io) {
  const int lane = threadIdx.x;
  const int64_t words = w.in / 8;
  // o is the same for the whole warp, so every lane reaches the shuffles.
  for (int64_t o = blockIdx.x * int64_t{kSlices} + threadIdx.y; o < w.out;
       o += int64_t{gridDim.x} * kSlices) {
    float acc[kTokens];
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;
    int64_t next = 0;  // first input past the current group
    float scale = 0.0f;
    uint32_t zero = 0;
    for (int64_t c = lane; c < words; c += kLanes) {
      const auto word = static_cast<uint32_t>(w.qweight[o * words + c]);
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int64_t i = c * 8 + k;
        if (i >= next) {
          const int64_t g = i / w.group_size;
          next = (g + 1) * w.group_size;
          gemv_group(w, o, g, scale, zero);
        }
        const float wv = weight_value((word >> (4 * k)) & 15u, zero, scale);
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
          const float xv = t < io.mcount ? load_float(io.x, (io.m0 + t) * w.in + i, io.xk) : 0.0f;
          acc[t] = fmaf(xv, wv, acc[t]);
        }
      }
    }
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
#pragma unroll
      for (int d = kLanes / 2; d > 0; d /= 2) acc[t] += __shfl_xor_sync(0xFFFFFFFFu, acc[t], d);
    }
    if (lane == 0) {
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        if (t >= io.mcount) break;
        float s = acc[t];
        if (io.bias != nullptr) s += load_float(io.bias, o, io.bk);
        store_float_rn(io.y, (io.m0 + t) * w.out + o, io.yk, s);
      }
    }
  }
}

template <int kTokens>
void launch(const Packed& w, const Io& io, cudaStream_t stream) {
  const dim3 block(kLanes, kSlices);
  if (w.gemv) {
    gemv_layout_kernel<kTokens><<<grid_for(w.out, kSlices), block, 0, stream>>>(w, io);
  } else {
    gemm_layout_kernel<kTokens><<<grid_for(w.out / 8, kLanes), block, 0, stream>>>(w, io);
  }
}

}  // namespace

std::string gemv(const Packed& w, const void* x, Float x_kind, int64_t rows, const void* bias,
                 Float bias_kind, void* y, Float y_kind, void* stream) {
  if (rows == 0 || w.out == 0) return "";
  if (w.group_size <= 0 || w.out % 8 != 0 || w.in % w.group_size != 0 ||
      (w.gemv && w.in % 8 != 0)) {
    return "awq gemv: the layer does not pack (out " + std::to_string(w.out) + ", in " +
           std::to_string(w.in) + ", group_size " + std::to_string(w.group_size) + ")";
  }
  Io io;
  io.x = x;
  io.xk = x_kind;
  io.bias = bias;
  io.bk = bias_kind;
  io.y = y;
  io.yk = y_kind;
  for (int64_t m0 = 0; m0 < rows; m0 += kMaxTokens) {
    io.m0 = m0;
    io.mcount = static_cast<int>(rows - m0 < kMaxTokens ? rows - m0 : kMaxTokens);
    // A GEMV does one token's work, not four.
    if (io.mcount == 1) {
      launch<1>(w, io, as_stream(stream));
    } else {
      launch<kMaxTokens>(w, io, as_stream(stream));
    }
    const std::string err =
        launch_error(w.gemv ? "awq gemv_layout_kernel" : "awq gemm_layout_kernel");
    if (!err.empty()) return err;
  }
  return "";
}

}  // namespace qforge::plugins::awq::gpu
