// hqq linear (GEMV for decode-sized x) on the GPU (hqq_cuda.hpp): W's values formed per element
// exactly as dequantize forms them, never stored; products summed in fp32 (fmaf) per lane, then
// across the warp.
//
// The sliced kernel reads each W_q byte once: when out is a multiple of the slice count, byte
// (pn, k) of W_q holds W[pn + s * out / slices, k] for every slice s, so one warp computes those
// `slices` output rows together. Other shapes take the generic kernel (one warp per output row,
// one byte load per element). Tokens go in passes of up to 8, kept in registers. The compute
// dtype is a template argument of the row loops, chosen once per kernel (device_common.cuh).
#include "cuda/device_common.cuh"

namespace qforge::plugins::hqq::gpu {
namespace {

constexpr int kCta = 256;
constexpr int kWarps = kCta / 32;
constexpr int kMaxTokens = 8;

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
__device__ __forceinline__ void finish(const Io& io, int64_t out, int64_t n, int lane,
                                       float (&acc)[kTokens]) {
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    if (t >= io.mcount) break;  // warp-uniform
    const float v = warp_sum(acc[t]);
    if (lane == 0) {
      const float b = io.bias != nullptr ? load_float(io.bias, n, io.bk) : 0.0f;
      store_float(io.y, (io.m0 + t) * out + n, io.yk, v + b);
    }
  }
}

// Requires out % slices == 0, in % 4 == 0, group % 4 == 0 and a 4-byte aligned W_q (the host
// checks): each lane takes 4 consecutive bytes, whose codes share one group per slice.
template <int kBits, int kTokens, Float kKind>
__device__ void sliced_rows(const Packed& w, const Io& io) {
  constexpr int kSlices = 8 / kBits;
  constexpr uint32_t kMask = (1u << kBits) - 1u;
  const int64_t in = w.in, out = w.out;
  const int64_t per_slice = out / kSlices;
  const int64_t groups_per_slice = per_slice * in / w.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t pn = blockIdx.x * int64_t{kWarps} + warp; pn < per_slice;
       pn += int64_t{gridDim.x} * kWarps) {
    float acc[kSlices][kTokens];
#pragma unroll
    for (int s = 0; s < kSlices; ++s) {
#pragma unroll
      for (int t = 0; t < kTokens; ++t) acc[s][t] = 0.0f;
    }
    const uint8_t* row = w.wq + pn * in;
    for (int64_t k = lane * 4; k < in; k += 128) {
      const uint32_t word = *reinterpret_cast<const uint32_t*>(row + k);
      float xv[kTokens][4];
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          xv[t][j] = t < io.mcount ? load_float(io.x, (io.m0 + t) * in + k + j, io.xk) : 0.0f;
        }
      }
      const int64_t g0 = (pn * in + k) / w.group;
#pragma unroll
      for (int s = 0; s < kSlices; ++s) {
        const int64_t grp = s * groups_per_slice + g0;
        const float z = load_float(w.zero, grp, w.zero_kind);
        const float sc = load_float(w.scale, grp, kKind);
        const int shift = (kSlices - 1 - s) * kBits;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float wv = dequant_value<kKind>((word >> (8 * j + shift)) & kMask, z, sc);
#pragma unroll
          for (int t = 0; t < kTokens; ++t) acc[s][t] = fmaf(xv[t][j], wv, acc[s][t]);
        }
      }
    }
#pragma unroll
    for (int s = 0; s < kSlices; ++s) finish<kTokens>(io, out, pn + s * per_slice, lane, acc[s]);
  }
}

template <int kBits, int kTokens>
__global__ void linear_sliced_kernel(Packed w, Io io) {
  switch (w.scale_kind) {
    case Float::kF16:
      sliced_rows<kBits, kTokens, Float::kF16>(w, io);
      break;
    case Float::kBF16:
      sliced_rows<kBits, kTokens, Float::kBF16>(w, io);
      break;
    default:
      sliced_rows<kBits, kTokens, Float::kF32>(w, io);
  }
}

// Any shape hqq can pack: the code of W[n, k] is found from its flat index.
template <int kBits, int kTokens, Float kKind>
__device__ void generic_rows(const Packed& w, const Io& io) {
  constexpr int kSlices = 8 / kBits;
  constexpr uint32_t kMask = (1u << kBits) - 1u;
  const int64_t in = w.in, out = w.out;
  const int64_t q = out * in / kSlices;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t n = blockIdx.x * int64_t{kWarps} + warp; n < out; n += int64_t{gridDim.x} * kWarps) {
    float acc[kTokens];
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;
    for (int64_t k = lane; k < in; k += 32) {
      const int64_t f = n * in + k;
      const int64_t s = f / q;
      const uint32_t code =
          (static_cast<uint32_t>(w.wq[f - s * q]) >> ((kSlices - 1 - s) * kBits)) & kMask;
      const int64_t grp = f / w.group;
      const float wv = dequant_value<kKind>(code, load_float(w.zero, grp, w.zero_kind),
                                            load_float(w.scale, grp, kKind));
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const float xv = t < io.mcount ? load_float(io.x, (io.m0 + t) * in + k, io.xk) : 0.0f;
        acc[t] = fmaf(xv, wv, acc[t]);
      }
    }
    finish<kTokens>(io, out, n, lane, acc);
  }
}

template <int kBits, int kTokens>
__global__ void linear_generic_kernel(Packed w, Io io) {
  switch (w.scale_kind) {
    case Float::kF16:
      generic_rows<kBits, kTokens, Float::kF16>(w, io);
      break;
    case Float::kBF16:
      generic_rows<kBits, kTokens, Float::kBF16>(w, io);
      break;
    default:
      generic_rows<kBits, kTokens, Float::kF32>(w, io);
  }
}

template <int kBits, int kTokens>
void launch_one(const Packed& w, const Io& io, bool sliced, cudaStream_t stream) {
  if (sliced) {
    linear_sliced_kernel<kBits, kTokens>
        <<<grid_for(w.out / (8 / kBits), kWarps), kCta, 0, stream>>>(w, io);
  } else {
    linear_generic_kernel<kBits, kTokens><<<grid_for(w.out, kWarps), kCta, 0, stream>>>(w, io);
  }
}

template <int kBits>
void launch_pass(const Packed& w, const Io& io, bool sliced, cudaStream_t stream) {
  // The smallest register tile that holds the pass: a GEMV does one token's work, not eight.
  // Three widths keep the kernel count (and nvcc's time) down.
  if (io.mcount <= 1) {
    launch_one<kBits, 1>(w, io, sliced, stream);
  } else if (io.mcount <= 4) {
    launch_one<kBits, 4>(w, io, sliced, stream);
  } else {
    launch_one<kBits, kMaxTokens>(w, io, sliced, stream);
  }
}

bool aligned(const void* p, uintptr_t to) { return reinterpret_cast<uintptr_t>(p) % to == 0; }

}  // namespace

std::string linear(const Packed& w, const void* x, Float x_kind, int64_t rows, const void* bias,
                   Float bias_kind, void* y, Float y_kind, void* stream) {
  if (rows == 0 || w.out == 0) return "";
  if (w.bits != 4 && w.bits != 2) {
    return "hqq linear: no kernel for " + std::to_string(w.bits) + " bits";
  }
  const int64_t slices = 8 / w.bits;
  if (w.group <= 0 || (w.out * w.in) % (w.group * slices) != 0) {
    return "hqq linear: " + std::to_string(w.out * w.in) + " elements do not split into " +
           std::to_string(slices) + " slices of whole groups of " + std::to_string(w.group);
  }
  const bool sliced = w.out % slices == 0 && w.in % 4 == 0 && w.group % 4 == 0 && aligned(w.wq, 4);
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
    if (w.bits == 4) {
      launch_pass<4>(w, io, sliced, as_stream(stream));
    } else {
      launch_pass<2>(w, io, sliced, as_stream(stream));
    }
    const std::string err = launch_error("hqq linear kernel");
    if (!err.empty()) return err;
  }
  return "";
}

}  // namespace qforge::plugins::hqq::gpu
