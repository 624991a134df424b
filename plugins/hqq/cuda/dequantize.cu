// hqq dequantize on the GPU (hqq_cuda.hpp): the CPU's dense_weight, element for element.
#include "cuda/device_common.cuh"

namespace qforge::plugins::hqq::gpu {
namespace {

constexpr int kCta = 256;

template <int kVec>
__device__ __forceinline__ void store_run(void* out, int64_t f, Float kind,
                                          const float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    // f % 4 == 0 and the output is 16-byte aligned (the host checks): one vector store.
    if (kind == Float::kF32) {
      *reinterpret_cast<float4*>(static_cast<float*>(out) + f) =
          make_float4(v[0], v[1], v[2], v[3]);
    } else {
      const bool h = kind == Float::kF16;
      uint32_t b[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = h ? half_bits(v[j]) : bf16_bits(v[j]);
      *reinterpret_cast<uint2*>(static_cast<uint16_t*>(out) + f) =
          make_uint2(b[0] | (b[1] << 16), b[2] | (b[3] << 16));
    }
  } else {
    store_float(out, f, kind, v[0]);
  }
}

// One thread per kVec consecutive bytes of W_q (q bytes in all). kVec 4 needs group % 4 == 0,
// so the four bytes' codes of one slice share a group.
template <int kBits, int kVec, Float kKind>
__device__ void dequantize_items(const Packed& w, int64_t q, Float out_kind, void* out) {
  constexpr int kSlices = 8 / kBits;
  constexpr uint32_t kMask = (1u << kBits) - 1u;
  const int64_t groups_per_slice = q / w.group;
  const int64_t items = q / kVec;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < items;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = i * kVec;
    uint32_t word = 0;
    if constexpr (kVec == 4) {
      word = *reinterpret_cast<const uint32_t*>(w.wq + p);  // byte j at bits 8j (little-endian)
    } else {
      word = w.wq[p];
    }
    const int64_t g0 = p / w.group;
#pragma unroll
    for (int s = 0; s < kSlices; ++s) {
      const int64_t grp = s * groups_per_slice + g0;
      const float z = load_float(w.zero, grp, w.zero_kind);
      const float sc = load_float(w.scale, grp, kKind);
      const int shift = (kSlices - 1 - s) * kBits;
      float v[kVec];
#pragma unroll
      for (int j = 0; j < kVec; ++j)
        v[j] = dequant_value<kKind>((word >> (8 * j + shift)) & kMask, z, sc);
      store_run<kVec>(out, s * q + p, out_kind, v);
    }
  }
}

// The compute dtype (the scale's) as a template argument, chosen once per kernel.
template <int kBits, int kVec>
__global__ void dequantize_kernel(Packed w, int64_t q, Float out_kind, void* out) {
  switch (w.scale_kind) {
    case Float::kF16:
      dequantize_items<kBits, kVec, Float::kF16>(w, q, out_kind, out);
      break;
    case Float::kBF16:
      dequantize_items<kBits, kVec, Float::kBF16>(w, q, out_kind, out);
      break;
    default:
      dequantize_items<kBits, kVec, Float::kF32>(w, q, out_kind, out);
  }
}

template <int kBits>
std::string launch(const Packed& w, int64_t q, bool vec, Float out_kind, void* out, void* stream) {
  if (vec) {
    dequantize_kernel<kBits, 4>
        <<<grid_for(q / 4, kCta), kCta, 0, as_stream(stream)>>>(w, q, out_kind, out);
  } else {
    dequantize_kernel<kBits, 1>
        <<<grid_for(q, kCta), kCta, 0, as_stream(stream)>>>(w, q, out_kind, out);
  }
  return launch_error("hqq dequantize_kernel");
}

bool aligned(const void* p, uintptr_t to) { return reinterpret_cast<uintptr_t>(p) % to == 0; }

}  // namespace

std::string dequantize(const Packed& w, Float out_kind, void* out, void* stream) {
  const int64_t numel = w.out * w.in;
  if (numel == 0) return "";
  if (w.bits != 4 && w.bits != 2)
    return "hqq dequantize: no kernel for " + std::to_string(w.bits) + " bits";
  const int64_t slices = 8 / w.bits;
  if (w.group <= 0 || numel % (w.group * slices) != 0) {
    return "hqq dequantize: " + std::to_string(numel) + " elements do not split into " +
           std::to_string(slices) + " slices of whole groups of " + std::to_string(w.group);
  }
  const int64_t q = numel / slices;
  const bool vec = q % 4 == 0 && w.group % 4 == 0 && aligned(w.wq, 4) && aligned(out, 16);
  return w.bits == 4 ? launch<4>(w, q, vec, out_kind, out, stream)
                     : launch<2>(w, q, vec, out_kind, out, stream);
}

}  // namespace qforge::plugins::hqq::gpu
