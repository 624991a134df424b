// LLM.int8 on the GPU (bnb_cuda.hpp, FORMATS.md §2.3): row-wise absmax quantization of the
// float16-cast weight, its dequantization, and the mixed-precision matmul.
//
// The matmul allocates nothing (the ABI forbids device allocations in hooks): every CTA finds
// the outlier columns and the row scales of x itself, in shared memory, before its output rows.
// That repeats a read of x per CTA, which is cheap next to reading W for the decode-sized x
// this path serves. The int8 x int8 products accumulate exactly in int32, so that part is
// order-independent; only the float outlier sum and the rescale round.
#include <cmath>

#include "cuda/device_common.cuh"

namespace qforge::plugins::bnb::gpu {
namespace {

constexpr int kCta = 256;
constexpr int kWarps = kCta / QF_GPU_WARP;
// Rows of x whose scales one launch keeps in shared memory (16 KiB).
constexpr int64_t kRowChunk = 4096;
constexpr float kInv127 = 7.874015718698502e-3f;  // bitsandbytes' literal 1/127
constexpr float kMmDequant = 6.200012e-05f;       // 1 / (127 * 127), bitsandbytes' MM_DEQUANT_CONST

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = QF_GPU_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, qf_shfl_xor(v, o));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = QF_GPU_WARP / 2; o > 0; o >>= 1) v += qf_shfl_xor(v, o);
  return v;
}

__device__ __forceinline__ int warp_sum_int(int v) {
#pragma unroll
  for (int o = QF_GPU_WARP / 2; o > 0; o >>= 1) v += qf_shfl_xor(v, o);
  return v;
}

// Max over the CTA; every thread gets the result. `scratch` holds kWarps floats.
__device__ float cta_max(float v, float* scratch) {
  v = warp_max(v);
  const int warp = threadIdx.x / QF_GPU_WARP, lane = threadIdx.x % QF_GPU_WARP;
  __syncthreads();  // scratch may still be read from the previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = 0.0f;
  for (int i = 0; i < kWarps; ++i) m = fmaxf(m, scratch[i]);
  return m;
}

// round-half-even(v * (127 / scale)) as torch.round does, clamped to +-127 as the CPU's
// round_to_code; scale 0 (all-zero row) gives 0. The factor is rounded twice, as PyTorch's
// `127.0 / tensor` (reciprocal, then multiply) and the CPU's int8_quant_scale.
__device__ __forceinline__ int quantize_int8(float v, float scale) {
  if (scale == 0.0f) return 0;
  const float r = rintf(v * __fmul_rn(__frcp_rn(scale), 127.0f));
  return static_cast<int>(fminf(127.0f, fmaxf(-127.0f, r)));
}

__global__ void quantize_8bit_kernel(Matrix w, int8_t* cb, float* scb) {
  __shared__ float scratch[kWarps];
  for (int64_t r = blockIdx.x; r < w.rows; r += gridDim.x) {
    float m = 0.0f, bad = 0.0f;
    for (int64_t c = threadIdx.x; c < w.cols; c += blockDim.x) {
      const float v =
          to_half_float(load_float(w.data, r * w.row_stride + c * w.col_stride, w.kind));
      if (!isfinite(v)) bad = 1.0f;
      m = fmaxf(m, fabsf(v));
    }
    m = cta_max(m, scratch);
    bad = cta_max(bad, scratch);
    if (threadIdx.x == 0) scb[r] = bad != 0.0f ? __int_as_float(0x7fc00000) : m;
    for (int64_t c = threadIdx.x; c < w.cols; c += blockDim.x) {
      const float v =
          to_half_float(load_float(w.data, r * w.row_stride + c * w.col_stride, w.kind));
      cb[r * w.cols + c] = static_cast<int8_t>(bad != 0.0f ? 0 : quantize_int8(v, m));
    }
  }
}

__global__ void dequantize_8bit_kernel(const int8_t* cb, const float* scb, int64_t out, int64_t in,
                                       Float kind, bool transpose_out, void* dst) {
  const int64_t n = out * in;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = e / in, k = e % in;
    const float v = static_cast<float>(cb[e]) * scb[r] * kInv127;
    store_float(dst, transpose_out ? k * out + r : e, kind, v);
  }
}

// Dynamic shared memory: the outlier bitmask (ceil(in / 32) words), then `mcount` row scales.
__global__ void linear_8bit_kernel(const int8_t* cb, const float* scb, int64_t out, int64_t in,
                                   const void* x, Float kind, int64_t rows, int64_t m0,
                                   int64_t mcount, float threshold, const void* bias,
                                   Float bias_kind, void* y) {
  extern __shared__ uint32_t shared[];
  __shared__ float scratch[kWarps];
  const int64_t words = (in + 31) / 32;
  uint32_t* outlier = shared;
  float* rowstat = reinterpret_cast<float*>(shared + words);
  for (int64_t i = threadIdx.x; i < words; i += blockDim.x) outlier[i] = 0;
  __syncthreads();
  // A column is an outlier when any row of x (all rows, not just this chunk) reaches the
  // threshold there; threshold 0 turns the decomposition off.
  if (threshold > 0.0f) {
    for (int64_t j = threadIdx.x; j < in; j += blockDim.x) {
      bool hit = false;
      for (int64_t m = 0; m < rows && !hit; ++m) {
        hit = fabsf(to_half_float(load_float(x, m * in + j, kind))) >= threshold;
      }
      if (hit) atomicOr(&outlier[j / 32], 1u << (j % 32));
    }
  }
  __syncthreads();
  const auto is_outlier = [&](int64_t j) { return ((outlier[j / 32] >> (j % 32)) & 1u) != 0; };
  // A row's scale is the absmax of its elements below the threshold (bitsandbytes zeroes the
  // outlier elements first), as cpu::quantize_activations_int8.
  for (int64_t t = 0; t < mcount; ++t) {
    float m = 0.0f;
    for (int64_t j = threadIdx.x; j < in; j += blockDim.x) {
      const float a = fabsf(to_half_float(load_float(x, (m0 + t) * in + j, kind)));
      if (threshold <= 0.0f || a < threshold) m = fmaxf(m, a);
    }
    m = cta_max(m, scratch);
    if (threadIdx.x == 0) rowstat[t] = m;
  }
  __syncthreads();
  const int lane = threadIdx.x % QF_GPU_WARP;
  for (int64_t r = blockIdx.x * int64_t{kWarps} + threadIdx.x / QF_GPU_WARP; r < out;
       r += int64_t{gridDim.x} * kWarps) {
    const int8_t* wrow = cb + r * in;
    const float s = scb[r];
    for (int64_t t = 0; t < mcount; ++t) {
      const int64_t m = m0 + t;
      const float rs = rowstat[t];
      int acc = 0;
      float outl = 0.0f;
      for (int64_t j = lane; j < in; j += QF_GPU_WARP) {
        const float v = load_float(x, m * in + j, kind);
        const int c = wrow[j];
        if (is_outlier(j)) {
          // Outlier columns multiply the original x (not its float16 rounding), as the CPU.
          outl += v * ((static_cast<float>(c) * s) * kInv127);
        } else {
          acc += quantize_int8(to_half_float(v), rs) * c;
        }
      }
      acc = warp_sum_int(acc);
      outl = warp_sum(outl);
      if (lane == 0) {
        // int8_mm_dequant's order: acc * (row_stat * col_stat) * 1/127^2, then bias, then the
        // outlier part (the CPU path's order).
        float v = static_cast<float>(acc) * (rs * s) * kMmDequant;
        if (bias != nullptr) v += load_float(bias, r, bias_kind);
        v += outl;
        store_float(y, m * out + r, kind, v);
      }
    }
  }
}

}  // namespace

std::string quantize_8bit(const Matrix& w, int8_t* cb, float* scb, void* stream) {
  if (w.rows == 0) return "";
  quantize_8bit_kernel<<<grid_for(w.rows, 1), kCta, 0, as_stream(stream)>>>(w, cb, scb);
  return launch_error("quantize_8bit_kernel");
}

std::string dequantize_8bit(const int8_t* cb, const float* scb, int64_t out, int64_t in, Float kind,
                            bool transpose_out, void* dst, void* stream) {
  if (out * in == 0) return "";
  dequantize_8bit_kernel<<<grid_for(out * in, kCta), kCta, 0, as_stream(stream)>>>(
      cb, scb, out, in, kind, transpose_out, dst);
  return launch_error("dequantize_8bit_kernel");
}

std::string linear_8bit(const int8_t* cb, const float* scb, int64_t out, int64_t in, const void* x,
                        Float x_kind, int64_t rows, float threshold, const void* bias,
                        Float bias_kind, void* y, void* stream) {
  if (rows == 0 || out == 0) return "";
  const int64_t words = (in + 31) / 32;
  for (int64_t m0 = 0; m0 < rows; m0 += kRowChunk) {
    const int64_t mcount = rows - m0 < kRowChunk ? rows - m0 : kRowChunk;
    const size_t shared = static_cast<size_t>(words + mcount) * 4;
    if (shared > 48 * 1024) {
      return "linear_8bit: in_features " + std::to_string(in) +
             " needs more shared memory than one CTA has (at most 65536 columns fit)";
    }
    linear_8bit_kernel<<<grid_for(out, kWarps, 4096), kCta, shared, as_stream(stream)>>>(
        cb, scb, out, in, x, x_kind, rows, m0, mcount, threshold, bias, bias_kind, y);
    const std::string err = launch_error("linear_8bit_kernel");
    if (!err.empty()) return err;
  }
  return "";
}

}  // namespace qforge::plugins::bnb::gpu
