// Blockwise 4-bit quantization on the GPU (bnb_cuda.hpp): eight threads per 64-element block,
// eight elements each, so a contiguous weight is read with one 16-byte load per thread and the
// packed codes are written as one 4-byte word per thread. Bit-identical to
// cpu::quantize_block_4bit: exact max, IEEE reciprocal, one product, threshold counts.
#include <cmath>

#include "cuda/device_common.cuh"

namespace qforge::plugins::bnb::gpu {
namespace {

constexpr int kBlock = 64;
constexpr int kPerThread = 8;
constexpr int kThreadsPerBlock = kBlock / kPerThread;
constexpr int kCta = 256;
// bitsandbytes' CPU path clamps the divisor so an all-zero block scales to zeros, not NaN.
constexpr float kMinAbsmax = 1e-38f;

// The CPU's decision thresholds (cpu/codebook.hpp: kNf4Thresholds, kFp4Thresholds), same
// literals, each table padded with +inf so a 4-step (3-step) binary search needs no bounds
// check. The search returns the number of thresholds strictly below y, exactly the CPU's count,
// in 4 comparisons instead of 15.
__constant__ float kNf4Table[16] = {
    -0.8480964004993439f,  -0.6106329262256622f,  -0.4599952697753906f,   -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f,   0.2035212516784668f,   0.2920137718319893f,    0.3893125355243683f,
    0.5016634166240692f,   0.6427869200706482f,   0.8614784181118011f,    __builtin_huge_valf()};
__constant__ float kFp4Table[8] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,
                                   0.4166667f,  0.583333f,  0.8333333f,  __builtin_huge_valf()};
// cpu::kFp4MagnitudeOrder {0,1,6,7,4,5,2,3} as nibbles, so the lookup stays in a register.
constexpr uint32_t kFp4OrderNibbles = 0x32547610u;

// `table` is the CTA's shared copy (lanes index it divergently; constant memory would
// serialize them).
__device__ __forceinline__ uint8_t encode_nf4(float y, const float* table) {
  int c = 0;
#pragma unroll
  for (int step = 8; step > 0; step >>= 1) c += y > table[c + step - 1] ? step : 0;
  return static_cast<uint8_t>(c);
}

// Sign first, then the magnitude: a negative value that rounds to zero keeps its sign bit.
__device__ __forceinline__ uint8_t encode_fp4(float y, const float* table) {
  const uint32_t sign = y < 0.0f ? 0b1000u : 0u;
  const float a = fabsf(y);
  int c = 0;
#pragma unroll
  for (int step = 4; step > 0; step >>= 1) c += a > table[c + step - 1] ? step : 0;
  return static_cast<uint8_t>(sign | ((kFp4OrderNibbles >> (4 * c)) & 0xfu));
}

__device__ __forceinline__ void load8(const Matrix& w, int64_t n, int64_t e0, bool vector,
                                      float v[kPerThread]) {
  if (vector) {
    if (w.kind == Float::kF32) {
      const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(w.data) + e0);
      const float4 a = p[0], b = p[1];
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z,
      v[7] = b.w;
    } else {
      const uint4 q = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w.data) + e0);
      const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const uint16_t lo = static_cast<uint16_t>(words[i] & 0xffffu);
        const uint16_t hi = static_cast<uint16_t>(words[i] >> 16);
        if (w.kind == Float::kF16) {
          v[2 * i] = __half2float(__ushort_as_half(lo));
          v[2 * i + 1] = __half2float(__ushort_as_half(hi));
        } else {
          v[2 * i] = __uint_as_float(static_cast<uint32_t>(lo) << 16);
          v[2 * i + 1] = __uint_as_float(static_cast<uint32_t>(hi) << 16);
        }
      }
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t e = e0 + i;
    if (e >= n) {
      v[i] = 0.0f;  // outside the weight: cannot raise the max, coded as padding below
      continue;
    }
    const int64_t r = e / w.cols, c = e % w.cols;
    v[i] = load_float(w.data, r * w.row_stride + c * w.col_stride, w.kind);
  }
}

// `vector_ok`: the view is row-major contiguous and 16-byte aligned, so whole groups of eight
// use vector loads; the tail group and other layouts read element by element.
__global__ void quantize_4bit_kernel(Code4 type, Matrix w, int64_t n, int64_t blocks,
                                     bool vector_ok, uint8_t* packed, float* absmax,
                                     unsigned long long* first_bad) {
  __shared__ float table[16];
  if (threadIdx.x < 16) {
    table[threadIdx.x] =
        type == Code4::kNf4 ? kNf4Table[threadIdx.x] : kFp4Table[threadIdx.x < 8 ? threadIdx.x : 7];
  }
  __syncthreads();
  const int sub = threadIdx.x % kThreadsPerBlock;
  const int64_t per_cta = kCta / kThreadsPerBlock;
  // The loop bound is uniform per CTA, so every lane reaches the shuffles.
  for (int64_t b0 = blockIdx.x * per_cta; b0 < blocks; b0 += int64_t{gridDim.x} * per_cta) {
    const int64_t block = b0 + threadIdx.x / kThreadsPerBlock;
    const bool valid = block < blocks;
    const int64_t e0 = block * kBlock + sub * kPerThread;
    float v[kPerThread];
    load8(w, valid ? n : 0, e0, valid && vector_ok && e0 + kPerThread <= n, v);
    float m = 0.0f;
    int bad = 0;
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      if (!isfinite(v[i])) bad = 1;
      m = fmaxf(m, fabsf(v[i]));
    }
#pragma unroll
    for (int o = 1; o < kThreadsPerBlock; o <<= 1) {
      m = fmaxf(m, qf_shfl_xor(m, o));
      bad |= qf_shfl_xor(bad, o);
    }
    if (!valid) continue;
    if (sub == 0) {
      if (absmax != nullptr) absmax[block] = bad ? __int_as_float(0x7fc00000) : m;
      if (bad && first_bad != nullptr) atomicMin(first_bad, static_cast<unsigned long long>(block));
    }
    if (packed == nullptr) continue;
    const float inv = 1.0f / fmaxf(m, kMinAbsmax);
    uint8_t codes[kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const float y = fminf(1.0f, fmaxf(-1.0f, v[i] * inv));
      const uint8_t c = type == Code4::kNf4 ? encode_nf4(y, table) : encode_fp4(y, table);
      codes[i] = e0 + i < n ? c : 0;  // odd n: the last low nibble is padding code 0
    }
    uint8_t* out = packed + e0 / 2;
    if (e0 + kPerThread <= n && (reinterpret_cast<uintptr_t>(out) & 3u) == 0) {
      uint32_t word = 0;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        word |= static_cast<uint32_t>((codes[2 * j] << 4) | codes[2 * j + 1]) << (8 * j);
      }
      *reinterpret_cast<uint32_t*>(out) = word;
    } else {
      for (int j = 0; j < 4 && e0 + 2 * j < n; ++j) {
        out[j] = static_cast<uint8_t>((codes[2 * j] << 4) | codes[2 * j + 1]);
      }
    }
  }
}

}  // namespace

std::string quantize_4bit(Code4 type, const Matrix& w, uint8_t* packed, float* absmax,
                          unsigned long long* first_bad, void* stream) {
  const int64_t n = w.rows * w.cols;
  if (n == 0) return "";
  const int64_t blocks = ceil_div(n, kBlock);
  const bool vector_ok =
      w.col_stride == 1 && w.row_stride == w.cols && reinterpret_cast<uintptr_t>(w.data) % 16 == 0;
  quantize_4bit_kernel<<<grid_for(blocks, kCta / kThreadsPerBlock), kCta, 0, as_stream(stream)>>>(
      type, w, n, blocks, vector_ok, packed, absmax, first_bad);
  return launch_error("quantize_4bit_kernel");
}

}  // namespace qforge::plugins::bnb::gpu
