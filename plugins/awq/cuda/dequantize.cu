// awq dequantize on the GPU (awq_cuda.hpp): cpu/kernels.hpp's weight, element for element.
//
// GEMM words pack eight outputs: one thread per output o and run of 32 inputs, neighbouring
// threads on neighbouring outputs, so the eight threads of a word share its load and each
// qweight / qzeros / scales row is read coalesced; a thread writes its 32 weights contiguously
// along the dense row. Scale and zero are reloaded only when the group changes.
// GEMV words pack eight inputs of one output, which is the dense row's own order: one thread
// per word, neighbouring threads on neighbouring words of a row, so reads and the eight-weight
// writes are both contiguous across a warp.
#include "cuda/device_common.cuh"

namespace qforge::plugins::awq::gpu {
namespace {

constexpr int kCta = 256;
constexpr int64_t kRun = 32;

__global__ void dequantize_gemm_kernel(Packed w, Float out_kind, void* out) {
  const int64_t words = w.out / 8;
  const int64_t runs = ceil_div(w.in, kRun);
  const int64_t items = runs * w.out;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < items;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = t % w.out;
    const int64_t c = o / 8;
    const int j = static_cast<int>(o % 8);
    const int64_t i0 = (t / w.out) * kRun;
    const int64_t i1 = i0 + kRun < w.in ? i0 + kRun : w.in;
    int64_t next = 0;  // first input past the current group
    float scale = 0.0f;
    uint32_t zero = 0;
    for (int64_t i = i0; i < i1; ++i) {
      if (i >= next) {
        const int64_t g = i / w.group_size;
        next = (g + 1) * w.group_size;
        scale = load_float(w.scales, g * w.out + o, w.scales_kind);
        zero = gemm_nibble(static_cast<uint32_t>(w.qzeros[g * words + c]), j);
      }
      const uint32_t code = gemm_nibble(static_cast<uint32_t>(w.qweight[i * words + c]), j);
      store_float_rn(out, o * w.in + i, out_kind, weight_value(code, zero, scale));
    }
  }
}

__global__ void dequantize_gemv_kernel(Packed w, Float out_kind, void* out) {
  const int64_t words = w.in / 8;  // qweight words per output row
  const int64_t items = words * w.out;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < items;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = t / words;
    const int64_t c = t % words;
    const auto word = static_cast<uint32_t>(w.qweight[t]);
    // A word's eight inputs may straddle two groups when group_size is not a multiple of 8.
    int64_t next = 0;  // first input past the current group
    float scale = 0.0f;
    uint32_t zero = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int64_t i = c * 8 + k;
      if (i >= next) {
        const int64_t g = i / w.group_size;
        next = (g + 1) * w.group_size;
        gemv_group(w, o, g, scale, zero);
      }
      store_float_rn(out, o * w.in + i, out_kind,
                     weight_value((word >> (4 * k)) & 15u, zero, scale));
    }
  }
}

}  // namespace

std::string dequantize(const Packed& w, Float out_kind, void* out, void* stream) {
  if (w.in == 0 || w.out == 0) return "";
  if (w.group_size <= 0 || w.out % 8 != 0 || w.in % w.group_size != 0) {
    return "awq dequantize: the layer does not pack (out " + std::to_string(w.out) + ", in " +
           std::to_string(w.in) + ", group_size " + std::to_string(w.group_size) + ")";
  }
  if (w.gemv) {
    if (w.in % 8 != 0) return "awq dequantize: GEMV in_features is not a multiple of 8";
    const int64_t items = w.in / 8 * w.out;
    dequantize_gemv_kernel<<<grid_for(items, kCta), kCta, 0, as_stream(stream)>>>(w, out_kind, out);
    return launch_error("awq dequantize_gemv_kernel");
  }
  const int64_t items = ceil_div(w.in, kRun) * w.out;
  dequantize_gemm_kernel<<<grid_for(items, kCta), kCta, 0, as_stream(stream)>>>(w, out_kind, out);
  return launch_error("awq dequantize_gemm_kernel");
}

}  // namespace qforge::plugins::awq::gpu
