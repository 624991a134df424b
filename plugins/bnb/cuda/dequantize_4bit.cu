// 4-bit dequantization on the GPU (bnb_cuda.hpp): one thread per packed byte (two elements),
// grid-stride. Each value is code[nibble] * absmax(block), one product as on the CPU; with
// double quantization the block's absmax is nested_map[code] * nested + offset, two roundings
// on both sides (--fmad=false), so the output equals the CPU's bit for bit.
#include "cuda/device_common.cuh"

namespace qforge::plugins::bnb::gpu {
namespace {

constexpr int kCta = 256;

__global__ void dequantize_4bit_kernel(Weight4 w, Float kind, bool transpose_out, void* out) {
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = w.code[threadIdx.x];
  __syncthreads();
  const int64_t n = w.out * w.in;
  const int64_t bytes = (n + 1) / 2;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < bytes;
       i += int64_t{gridDim.x} * blockDim.x) {
    const uint8_t byte = w.packed[i];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t e = 2 * i + h;
      if (e >= n) break;
      const float v =
          code[h == 0 ? byte >> 4 : byte & 0xf] * block_absmax(w.absmax, e / w.blocksize);
      const int64_t at = transpose_out ? (e % w.in) * w.out + e / w.in : e;
      store_float(out, at, kind, v);
    }
  }
}

}  // namespace

std::string dequantize_4bit(const Weight4& w, Float kind, bool transpose_out, void* out,
                            void* stream) {
  const int64_t n = w.out * w.in;
  if (n == 0) return "";
  dequantize_4bit_kernel<<<grid_for((n + 1) / 2, kCta), kCta, 0, as_stream(stream)>>>(
      w, kind, transpose_out, out);
  return launch_error("dequantize_4bit_kernel");
}

}  // namespace qforge::plugins::bnb::gpu
