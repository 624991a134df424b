// The reference FP8 linear on the GPU (fp8_cuda.hpp): every product formed as the CPU forward
// forms it (fp8_compute.cpp / fbgemm_compute.cpp), so only the order of the fp32 sums differs.
// Runs on any GPU the build has code for; the native kernel (linear_native.cu) is checked
// against it.
//
// No scratch memory (the ABI forbids device allocations in hooks): each CTA computes the
// activation scales of a chunk of tokens into shared memory, then one warp per output row
// rounds x to e4m3 on the fly. That re-reads x per CTA, which is cheap next to W for the
// decode-sized x this path is meant to check, not to serve fast.
#include "cuda/device_common.cuh"

namespace qforge::plugins::fp8::gpu {
namespace {

constexpr int kCta = 256;
constexpr int kWarps = kCta / 32;
constexpr int64_t kSharedFloats = 12288;  // 48 KiB of activation scales per CTA

int64_t groups_of(const Linear& w) {
  if (w.act == ActQuant::kDynamicGroup) return (w.grid.cols + w.group - 1) / w.group;
  return w.act == ActQuant::kRowCapped ? 1 : 0;
}

// Dynamic shared memory: `groups` scales per token of the chunk [m0, m0 + mcount).
__global__ void linear_emulated_kernel(Linear w, const void* x, Float xk, int64_t m0,
                                       int64_t mcount, int64_t groups, const void* bias, Float bk,
                                       void* y, Float yk) {
  extern __shared__ float scales[];
  const int64_t in = w.grid.cols, out = w.grid.rows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Activation scales: one warp per (token, group).
  for (int64_t p = warp; p < mcount * groups; p += kWarps) {
    const int64_t t = p / groups, gi = p % groups;
    const int64_t k0 = w.act == ActQuant::kDynamicGroup ? gi * w.group : 0;
    const int64_t k1 =
        w.act == ActQuant::kDynamicGroup ? (k0 + w.group < in ? k0 + w.group : in) : in;
    float amax = 0.0f;
    for (int64_t k = k0 + lane; k < k1; k += 32)
      amax = fmaxf(amax, fabsf(load_float(x, (m0 + t) * in + k, xk)));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    if (lane == 0) {
      // kDynamicGroup: s = amax / 448, or -1 marking a group of zeros, which the CPU leaves as
      // it is (a subnormal amax whose s underflows to 0 is not such a group).
      // kRowCapped: FBGEMM's row multiplier, 448 / 0 = inf clamped like any other.
      if (w.act == ActQuant::kDynamicGroup) {
        scales[p] = amax == 0.0f ? -1.0f : amax / kE4m3Max;
      } else {
        scales[p] = fminf(kE4m3Max / fminf(amax, w.ub), kE4m3Max * 512.0f);
      }
    }
  }
  __syncthreads();
  const float static_scale = w.act == ActQuant::kStatic ? *w.static_scale : 0.0f;
  const int64_t tc = w.grid.tile_cols();
  for (int64_t n = blockIdx.x * int64_t{kWarps} + warp; n < out; n += int64_t{gridDim.x} * kWarps) {
    const uint8_t* wrow = w.codes + n * in;
    const float* srow = w.winv + (n / w.grid.bm) * tc;
    for (int64_t t = 0; t < mcount; ++t) {
      const int64_t m = m0 + t;
      float acc = 0.0f;
      for (int64_t k = lane; k < in; k += 32) {
        const float xv = load_float(x, m * in + k, xk);
        if (w.act == ActQuant::kRowCapped) {
          acc += e4m3_to_float(e4m3_from_float(xv * scales[t])) * e4m3_to_float(wrow[k]);
        } else {
          const float s =
              w.act == ActQuant::kStatic ? static_scale : scales[t * groups + k / w.group];
          const float xf = s < 0.0f && w.act != ActQuant::kStatic
                               ? xv
                               : e4m3_to_float(e4m3_from_float(xv / s)) * s;
          acc += xf * (e4m3_to_float(wrow[k]) * srow[k / w.grid.bn]);
        }
      }
      acc = warp_sum(acc);
      if (lane == 0) {
        float v = acc;
        // FBGEMM: (acc * (1 / xs)) * weight_scale, the CPU's order.
        if (w.act == ActQuant::kRowCapped) v = v * (1.0f / scales[t]) * srow[0];
        v = v + (bias != nullptr ? load_float(bias, n, bk) : 0.0f);
        store_float(y, m * out + n, yk, v);
      }
    }
  }
}

}  // namespace

std::string linear_emulated(const Linear& w, const void* x, Float x_kind, int64_t rows,
                            const void* bias, Float bias_kind, void* y, Float y_kind,
                            void* stream) {
  const int64_t out = w.grid.rows;
  if (rows == 0 || out == 0) return "";
  const int64_t groups = groups_of(w);
  if (groups > kSharedFloats) {
    return "fp8 linear: " + std::to_string(groups) +
           " activation groups per token do not fit in shared memory (at most " +
           std::to_string(kSharedFloats) + ")";
  }
  const int64_t chunk = groups == 0 ? rows : kSharedFloats / groups;
  for (int64_t m0 = 0; m0 < rows; m0 += chunk) {
    const int64_t mcount = rows - m0 < chunk ? rows - m0 : chunk;
    const size_t shared = static_cast<size_t>(mcount * groups) * sizeof(float);
    linear_emulated_kernel<<<grid_for(out, kWarps, 4096), kCta, shared, as_stream(stream)>>>(
        w, x, x_kind, m0, mcount, groups, bias, bias_kind, y, y_kind);
    const std::string err = launch_error("linear_emulated_kernel");
    if (!err.empty()) return err;
  }
  return "";
}

}  // namespace qforge::plugins::fp8::gpu
