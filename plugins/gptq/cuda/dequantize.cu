// gptq dequantize on the GPU (gptq_cuda.hpp): cpu/kernels.hpp's weight, element for element.
//
// One thread per output o and run of 32 inputs: neighbouring threads take neighbouring outputs,
// so each qweight / qzeros / scales row is read coalesced, and a thread writes its 32 weights
// contiguously along the dense row. The group (and with it scale and zero) is reloaded only when
// g_idx changes, which without act-order is once per group.
#include "cuda/device_common.cuh"

namespace qforge::plugins::gptq::gpu {
namespace {

constexpr int kCta = 256;
constexpr int64_t kRun = 32;

__global__ void dequantize_kernel(Packed w, Float out_kind, void* out) {
  const int64_t runs = ceil_div(w.in, kRun);
  const int64_t items = runs * w.out;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < items;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = t % w.out;
    const int64_t i0 = (t / w.out) * kRun;
    const int64_t i1 = i0 + kRun < w.in ? i0 + kRun : w.in;
    int64_t last = -1;
    float scale = 0.0f;
    int32_t zero = 0;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = w.g_idx[i];
      if (g != last) {
        last = g;
        if (g < 0 || g >= w.groups) {
          scale = __int_as_float(0x7FC00000);  // NaN: a corrupt g_idx must not read wild memory
          zero = 0;
        } else {
          scale = load_float(w.scales, g * w.out + o, w.scales_kind);
          zero = zero_of(w, g, o);
        }
      }
      const uint32_t code = stream_value(w.qweight + o, w.out, w.bits, i);
      store_float_rn(out, o * w.in + i, out_kind, weight_value(code, zero, scale));
    }
  }
}

}  // namespace

std::string dequantize(const Packed& w, Float out_kind, void* out, void* stream) {
  if (w.in == 0 || w.out == 0) return "";
  if (w.bits != 2 && w.bits != 3 && w.bits != 4 && w.bits != 8) {
    return "gptq dequantize: no kernel for " + std::to_string(w.bits) + " bits";
  }
  const int64_t items = ceil_div(w.in, kRun) * w.out;
  dequantize_kernel<<<grid_for(items, kCta), kCta, 0, as_stream(stream)>>>(w, out_kind, out);
  return launch_error("gptq dequantize_kernel");
}

}  // namespace qforge::plugins::gptq::gpu
