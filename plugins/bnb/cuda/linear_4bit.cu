// y = x @ W^T (+ bias) with the 4-bit weight decoded on the fly (bnb_cuda.hpp).
//
// One warp per output row. In the fast kernel each lane reads 8 packed bytes (16 weights, all
// in one block since 16 divides the blocksize and `in`), so a warp reads 256 contiguous bytes
// per step, and the 16 matching values of x per row (L1-resident: every warp reads the same
// x). A batch of 8 steps' loads is issued before any is used. A GEMV (one row of x) keeps one
// accumulator per lane; a GEMM keeps kTile row accumulators and reuses each decoded weight for
// all of them, re-reading W once per tile of rows. Sums run in float32 in an order unlike the
// CPU's, so results agree with it within rounding, not bit for bit.
//
// Measured on an H200 (docs/gpu.md): correct, but ~1 TB/s, the same with W in L2, so the
// kernel is bound inside the SM (most likely the load/store pipe), not by HBM; R7 is not met.
#include "cuda/device_common.cuh"

namespace qforge::plugins::bnb::gpu {
namespace {

constexpr int kCta = 256;
constexpr int kWarps = kCta / QF_GPU_WARP;
constexpr int kTile = 4;
constexpr int kPerLane = 16;  // weights per lane per step: 8 packed bytes
constexpr int64_t kStep = QF_GPU_WARP * kPerLane;
constexpr int kBatch = 8;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = QF_GPU_WARP / 2; o > 0; o >>= 1) v += qf_shfl_xor(v, o);
  return v;
}

// Eight consecutive values of x starting at element i (16-byte aligned for every kind).
__device__ __forceinline__ void load_x8(const void* x, Float kind, int64_t i, float v[8]) {
  if (kind == Float::kF32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(x) + i);
    const float4 a = __ldg(p), b = __ldg(p + 1);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    return;
  }
  const uint4 q = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(x) + i));
  const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const uint16_t lo = static_cast<uint16_t>(words[k] & 0xffffu);
    const uint16_t hi = static_cast<uint16_t>(words[k] >> 16);
    if (kind == Float::kF16) {
      v[2 * k] = __half2float(__ushort_as_half(lo));
      v[2 * k + 1] = __half2float(__ushort_as_half(hi));
    } else {
      v[2 * k] = __uint_as_float(static_cast<uint32_t>(lo) << 16);
      v[2 * k + 1] = __uint_as_float(static_cast<uint32_t>(hi) << 16);
    }
  }
}

// log2 of the blocksizes (bitsandbytes' are powers of two): a 64-bit division by a runtime
// value costs tens of instructions, which made the first GEMV instruction-bound.
struct Shifts {
  int block = 0;
  int nested = 0;
};

__device__ __forceinline__ float scale_at(const Absmax& a, int64_t block, int nested_shift) {
  if (a.values != nullptr) return a.values[block];
  return a.nested_map[a.codes[block]] * a.nested[block >> nested_shift] + a.offset;
}

int log2_exact(int64_t v) {
  if (v <= 0 || (v & (v - 1)) != 0) return -1;
  int s = 0;
  while ((int64_t{1} << s) < v) ++s;
  return s;
}

__device__ __forceinline__ void finish_row(float acc, int64_t m, int64_t r, const Weight4& w,
                                           const void* bias, Float bias_kind, void* y, Float kind) {
  if (bias != nullptr) acc += load_float(bias, r, bias_kind);
  store_float(y, m * w.out + r, kind, acc);
}

template <int kRowsPerPass>
__global__ void linear_4bit_fast(Weight4 w, Shifts shift, const void* x, Float kind, int64_t rows,
                                 const void* bias, Float bias_kind, void* y) {
  // The codebook lives in registers: lane i holds code[i % 16] and a weight's value is a
  // shuffle from the lane its code names. No shared table means no CTA barrier before the
  // weight loads (a 256-entry byte table in shared memory was measured slower: bank conflicts).
  const int lane = threadIdx.x % QF_GPU_WARP;
  const float my_code = __ldg(w.code + (lane & 15));
  __shared__ float nested_map[256];
  Absmax scales = w.absmax;
  if (w.absmax.values == nullptr) {  // uniform over the grid: the barrier is safe
    for (int i = threadIdx.x; i < 256; i += blockDim.x) nested_map[i] = w.absmax.nested_map[i];
    __syncthreads();
    scales.nested_map = nested_map;
  }
  const int64_t warps = int64_t{gridDim.x} * kWarps;
  for (int64_t r = blockIdx.x * int64_t{kWarps} + threadIdx.x / QF_GPU_WARP; r < w.out;
       r += warps) {
    const int64_t row0 = r * w.in;
    for (int64_t m0 = 0; m0 < rows; m0 += kRowsPerPass) {
      float acc[kRowsPerPass];
#pragma unroll
      for (int t = 0; t < kRowsPerPass; ++t) acc[t] = 0.0f;
      // All loads of a batch are issued before any is used, so kBatch loads per lane are in
      // flight at once (a row of 4096 weights is one batch). Loop bounds are uniform over the
      // warp (the shuffles need every lane); lanes past the row's end decode zeros and skip
      // the accumulation.
      for (int64_t base = 0; base < w.in; base += kStep * kBatch) {
        const int64_t k0 = base + int64_t{lane} * kPerLane;
        uint2 words[kBatch];
        float s[kBatch];
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
          const int64_t k = k0 + u * kStep;
          words[u] = make_uint2(0u, 0u);
          s[u] = 0.0f;
          if (k < w.in) {
            words[u] = __ldg(reinterpret_cast<const uint2*>(w.packed + (row0 + k) / 2));
            s[u] = scale_at(scales, (row0 + k) >> shift.block, shift.nested);
          }
        }
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
          if (base + u * kStep >= w.in) break;  // uniform: no lane has work left
          const int64_t k = k0 + u * kStep;
          float wv[kPerLane];
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const uint32_t byte = ((j < 4 ? words[u].x : words[u].y) >> (8 * (j % 4))) & 0xffu;
            wv[2 * j] = qf_shfl(my_code, static_cast<int>(byte >> 4));
            wv[2 * j + 1] = qf_shfl(my_code, static_cast<int>(byte & 0xfu));
          }
          if (k >= w.in) continue;  // after the shuffles: only the accumulation diverges
#pragma unroll
          for (int t = 0; t < kRowsPerPass; ++t) {
            if (m0 + t >= rows) break;
            float xv[kPerLane];
            load_x8(x, kind, (m0 + t) * w.in + k, xv);
            load_x8(x, kind, (m0 + t) * w.in + k + 8, xv + 8);
            float part = 0.0f;
#pragma unroll
            for (int j = 0; j < kPerLane; ++j) part += wv[j] * xv[j];
            acc[t] += part * s[u];
          }
        }
      }
#pragma unroll
      for (int t = 0; t < kRowsPerPass; ++t) {
        const float total = warp_sum(acc[t]);
        if (lane == 0 && m0 + t < rows) finish_row(total, m0 + t, r, w, bias, bias_kind, y, kind);
      }
    }
  }
}

// Any blocksize, any `in`, unaligned buffers: element by element.
__global__ void linear_4bit_generic(Weight4 w, const void* x, Float kind, int64_t rows,
                                    const void* bias, Float bias_kind, void* y) {
  const int lane = threadIdx.x % QF_GPU_WARP;
  const int64_t warps = int64_t{gridDim.x} * kWarps;
  for (int64_t r = blockIdx.x * int64_t{kWarps} + threadIdx.x / QF_GPU_WARP; r < w.out;
       r += warps) {
    for (int64_t m = 0; m < rows; ++m) {
      float acc = 0.0f;
      for (int64_t k = lane; k < w.in; k += QF_GPU_WARP) {
        const int64_t e = r * w.in + k;
        const uint8_t byte = w.packed[e / 2];
        const float v =
            w.code[(e & 1) != 0 ? byte & 0xf : byte >> 4] * block_absmax(w.absmax, e / w.blocksize);
        acc += v * load_float(x, m * w.in + k, kind);
      }
      const float total = warp_sum(acc);
      if (lane == 0) finish_row(total, m, r, w, bias, bias_kind, y, kind);
    }
  }
}

}  // namespace

std::string linear_4bit(const Weight4& w, const void* x, Float x_kind, int64_t rows,
                        const void* bias, Float bias_kind, void* y, void* stream) {
  if (rows == 0 || w.out == 0) return "";
  const unsigned grid = grid_for(w.out, kWarps);
  Shifts shift;
  shift.block = log2_exact(w.blocksize);
  shift.nested = w.absmax.values != nullptr ? 0 : log2_exact(w.absmax.nested_blocksize);
  const bool fast = w.in % kPerLane == 0 && w.blocksize % kPerLane == 0 && shift.block >= 0 &&
                    shift.nested >= 0 && reinterpret_cast<uintptr_t>(w.packed) % 8 == 0 &&
                    reinterpret_cast<uintptr_t>(x) % 16 == 0;
  cudaStream_t s = as_stream(stream);
  if (!fast) {
    linear_4bit_generic<<<grid, kCta, 0, s>>>(w, x, x_kind, rows, bias, bias_kind, y);
    return launch_error("linear_4bit_generic");
  }
  if (rows == 1) {
    linear_4bit_fast<1><<<grid, kCta, 0, s>>>(w, shift, x, x_kind, rows, bias, bias_kind, y);
  } else {
    linear_4bit_fast<kTile><<<grid, kCta, 0, s>>>(w, shift, x, x_kind, rows, bias, bias_kind, y);
  }
  return launch_error("linear_4bit_fast");
}

}  // namespace qforge::plugins::bnb::gpu
