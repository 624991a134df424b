// The FP8 linear on tensor cores (fp8_cuda.hpp): mma.sync m16n8k32 e4m3 x e4m3 -> fp32, sm_89+.
//
// Block scaling as DeepSeek-V3's kernels: along K the weight has one scale per tile of KB
// columns (128 for the default 128x128 tiles) and the activations one per group of the same KB
// channels, so each KB-wide slice is summed on the tensor cores unscaled, then multiplied by
// (activation scale x weight scale) and added to an fp32 accumulator. Per-tensor and FBGEMM
// per-row scales are constant along K and take the same path with KB = 128.
//
// Activations are rounded to e4m3 by the same code and rules as the reference kernel
// (linear_emulated.cu), so the two differ only in how the fp32 sums are formed. Each CTA rounds
// its own tokens' x into shared memory (the ABI allows no scratch buffer), a stage of KS
// columns at a time, then its warps stream W from global memory straight into mma fragments.
//
// Fragment trick: the sum over k does not depend on the order of k, so A and B fragments need
// not follow the PTX k numbering, only the same k for the same register slot. Lane (g = lane/4,
// q = lane%4) loads 32 contiguous bytes of W row g per 128-wide chunk (two 16-byte loads, a
// warp reads 8 rows x 128 bytes), and step j of the chunk feeds bytes [8j, 8j+4) as b0 and
// [8j+4, 8j+8) as b1; the A fragment takes the same k from shared memory.
#include "cuda/device_common.cuh"

namespace qforge::plugins::fp8::gpu {
namespace {

constexpr int kWarps = 4;
constexpr int kCta = kWarps * 32;
constexpr int kPad = 16;  // bytes after each shared activation row (keeps 16-byte alignment)

// Geometry shared by the host launch and the kernel.
struct Plan {
  int64_t kb = 128;          // K columns per scale block
  int64_t ks = 2048;         // K columns per shared-memory stage (a multiple of kb)
  bool row_dynamic = false;  // kDynamicGroup with one group per token (per-tensor)
};

__device__ __forceinline__ void mma_e4m3(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  // Never launched: native_available() refuses code compiled below sm_89.
  (void)d, (void)a, (void)b0, (void)b1;
  __trap();
#endif
}

// MT m16 tiles of tokens and NT n8 tiles of outputs per warp; a CTA covers 16*MT tokens and
// kWarps*8*NT outputs. Dynamic shared memory: codes [16*MT][ks + kPad] bytes, then factors
// [16*MT][ks / kb] floats, then row scales [16*MT] floats.
template <int MT, int NT>
__global__ void __launch_bounds__(kCta)
    linear_native_kernel(Linear w, Plan plan, const void* x, Float xk, int64_t rows,
                         const void* bias, Float bk, void* y, Float yk) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kTokens = 16 * MT;
  const int64_t in = w.grid.cols, out = w.grid.rows;
  const int64_t stride = plan.ks + kPad;
  const int64_t blocks_per_stage = plan.ks / plan.kb;
  unsigned char* codes = smem;
  float* factors = reinterpret_cast<float*>(smem + kTokens * stride);
  float* row_scale = factors + kTokens * blocks_per_stage;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, q = lane % 4;
  const int64_t tc = w.grid.tile_cols();
  const int64_t n_cta = int64_t{kWarps} * 8 * NT;
  const bool per_row = w.act == ActQuant::kRowCapped || plan.row_dynamic;
  const float static_scale = w.act == ActQuant::kStatic ? *w.static_scale : 0.0f;

  for (int64_t m0 = blockIdx.y * int64_t{kTokens}; m0 < rows; m0 += int64_t{gridDim.y} * kTokens) {
    const int64_t n_warp = blockIdx.x * n_cta + warp * 8 * NT;
    float acc[MT][NT][4] = {};
    __syncthreads();  // row_scale of the previous token tile is no longer read
    if (per_row) {
      for (int t = warp; t < kTokens; t += kWarps) {
        float amax = 0.0f;
        if (m0 + t < rows) {
          for (int64_t k = lane; k < in; k += 32)
            amax = fmaxf(amax, fabsf(load_float(x, (m0 + t) * in + k, xk)));
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        if (lane == 0) {
          row_scale[t] = w.act == ActQuant::kRowCapped
                             ? fminf(kE4m3Max / fminf(amax, w.ub), kE4m3Max * 512.0f)
                             : (amax == 0.0f ? -1.0f : amax / kE4m3Max);
        }
      }
    }
    for (int64_t ks0 = 0; ks0 < in; ks0 += plan.ks) {
      const int64_t ks_len = in - ks0 < plan.ks ? in - ks0 : plan.ks;
      __syncthreads();  // the previous stage's codes are no longer read
      // Round x to e4m3: one warp per (token, K block) of the stage.
      for (int64_t p = warp; p < kTokens * blocks_per_stage; p += kWarps) {
        const int t = static_cast<int>(p / blocks_per_stage);
        const int64_t b = p % blocks_per_stage;
        const int64_t k0 = b * plan.kb;  // stage-relative
        const int64_t len = ks_len - k0 < plan.kb ? (ks_len - k0 > 0 ? ks_len - k0 : 0) : plan.kb;
        const bool live = m0 + t < rows && len > 0;
        const int64_t xrow = (m0 + t) * in + ks0 + k0;
        float s;  // kDynamicGroup / kStatic: the divisor; kRowCapped: the multiplier
        if (!live) {
          s = 0.0f;
        } else if (w.act == ActQuant::kStatic) {
          s = static_scale;
        } else if (per_row) {
          s = row_scale[t];
        } else {
          float amax = 0.0f;
          for (int64_t k = lane; k < len; k += 32)
            amax = fmaxf(amax, fabsf(load_float(x, xrow + k, xk)));
#pragma unroll
          for (int o = 16; o > 0; o >>= 1)
            amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
          s = amax == 0.0f ? -1.0f : amax / kE4m3Max;
        }
        unsigned char* crow = codes + t * stride + k0;
        for (int64_t k = lane; k < plan.kb; k += 32) {
          uint8_t c = 0;
          if (live && k < len) {
            const float xv = load_float(x, xrow + k, xk);
            if (w.act == ActQuant::kRowCapped) {
              c = e4m3_from_float(xv * s);
            } else {
              // A group of zeros (s < 0) holds only +-0, whose codes are +-0.
              c = s < 0.0f && w.act != ActQuant::kStatic ? e4m3_from_float(xv)
                                                         : e4m3_from_float(xv / s);
            }
          }
          crow[k] = c;
        }
        if (lane == 0) {
          float f = 0.0f;
          if (live) {
            if (w.act == ActQuant::kRowCapped) {
              f = 1.0f / s;
            } else {
              f = s < 0.0f && w.act != ActQuant::kStatic ? 0.0f : s;
            }
          }
          factors[t * blocks_per_stage + b] = f;
        }
      }
      __syncthreads();
      for (int64_t b = 0; b * plan.kb < ks_len; ++b) {
        const int64_t kb0 = ks0 + b * plan.kb;  // absolute
        const int64_t blen = in - kb0 < plan.kb ? in - kb0 : plan.kb;
        float part[MT][NT][4] = {};
        for (int64_t c0 = 0; c0 < blen; c0 += 128) {
          const bool valid = 32 * q < blen - c0;
          uint4 wb[NT][2];
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            const int64_t n = n_warp + nt * 8 + g;
            if (valid && n < out) {
              const uint4* p = reinterpret_cast<const uint4*>(w.codes + n * in + kb0 + c0 + 32 * q);
              wb[nt][0] = __ldg(p);
              wb[nt][1] = __ldg(p + 1);
            } else {
              wb[nt][0] = make_uint4(0, 0, 0, 0);
              wb[nt][1] = make_uint4(0, 0, 0, 0);
            }
          }
          const int64_t kk = (kb0 - ks0) + c0 + 32 * q;  // stage-relative
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            uint32_t bw[NT][2];
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
              const uint4& v = wb[nt][j / 2];
              bw[nt][0] = (j % 2 == 0) ? v.x : v.z;
              bw[nt][1] = (j % 2 == 0) ? v.y : v.w;
            }
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              uint32_t a[4] = {0, 0, 0, 0};
              if (valid) {
                const uint2 lo =
                    *reinterpret_cast<const uint2*>(codes + (mt * 16 + g) * stride + kk + 8 * j);
                const uint2 hi = *reinterpret_cast<const uint2*>(
                    codes + (mt * 16 + g + 8) * stride + kk + 8 * j);
                a[0] = lo.x;  // row g,     same k as b0
                a[1] = hi.x;  // row g + 8, same k as b0
                a[2] = lo.y;  // row g,     same k as b1
                a[3] = hi.y;  // row g + 8, same k as b1
              }
#pragma unroll
              for (int nt = 0; nt < NT; ++nt) mma_e4m3(part[mt][nt], a, bw[nt][0], bw[nt][1]);
            }
          }
        }
        // part (row g or g + 8, column 2q or 2q + 1) times its two scales.
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int64_t n = n_warp + nt * 8 + 2 * q + (i & 1);
            const float fw = n < out ? w.winv[(n / w.grid.bm) * tc + kb0 / w.grid.bn] : 0.0f;
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              const int t = mt * 16 + g + (i >= 2 ? 8 : 0);
              const float fx = factors[t * blocks_per_stage + b];
              acc[mt][nt][i] += part[mt][nt][i] * (fx * fw);
            }
          }
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int64_t m = m0 + mt * 16 + g + (i >= 2 ? 8 : 0);
          const int64_t n = n_warp + nt * 8 + 2 * q + (i & 1);
          if (m < rows && n < out) {
            const float v = acc[mt][nt][i] + (bias != nullptr ? load_float(bias, n, bk) : 0.0f);
            store_float(y, m * out + n, yk, v);
          }
        }
      }
    }
  }
}

Plan plan_for(const Linear& w, int tokens) {
  Plan p;
  const bool k_tiled = w.grid.bn < w.grid.cols;
  p.kb = k_tiled ? w.grid.bn : 128;
  p.row_dynamic = w.act == ActQuant::kDynamicGroup && w.group >= w.grid.cols;
  // About 32 KiB of codes per stage.
  const int64_t budget = 32768 / tokens;
  p.ks = budget >= p.kb ? (budget / p.kb) * p.kb : p.kb;
  return p;
}

size_t shared_bytes(const Plan& p, int tokens) {
  return static_cast<size_t>(tokens * (p.ks + kPad)) +
         static_cast<size_t>(tokens * (p.ks / p.kb)) * 4 + static_cast<size_t>(tokens) * 4;
}

template <int MT, int NT>
std::string launch(const Linear& w, const void* x, Float xk, int64_t rows, const void* bias,
                   Float bk, void* y, Float yk, void* stream) {
  constexpr int kTokens = 16 * MT;
  const Plan plan = plan_for(w, kTokens);
  const size_t shared = shared_bytes(plan, kTokens);
  auto* kernel = linear_native_kernel<MT, NT>;
  if (shared > 48 * 1024) {
    const std::string err =
        gpu_error(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(shared)),
                  "cudaFuncSetAttribute (shared memory)");
    if (!err.empty()) return err;
  }
  const dim3 grid(static_cast<unsigned>(ceil_div(w.grid.rows, int64_t{kWarps} * 8 * NT)),
                  grid_for(rows, kTokens));
  kernel<<<grid, kCta, shared, as_stream(stream)>>>(w, plan, x, xk, rows, bias, bk, y, yk);
  return launch_error("linear_native_kernel");
}

}  // namespace

const void* native_kernel_symbol() {
  return reinterpret_cast<const void*>(linear_native_kernel<1, 1>);
}

std::string native_unsupported(const Linear& w) {
  const int64_t in = w.grid.cols;
  if (in % 32 != 0) {
    return "in_features " + std::to_string(in) + " is not a multiple of 32 (the FP8 MMA's K)";
  }
  const bool k_tiled = w.grid.bn < in;
  if (k_tiled && (w.grid.bn % 32 != 0 || w.grid.bn > 512)) {
    return "scale tiles " + std::to_string(w.grid.bn) +
           " columns wide (the native kernel needs a multiple of 32, at most 512)";
  }
  if (w.act == ActQuant::kDynamicGroup && w.group < in && (!k_tiled || w.group != w.grid.bn)) {
    return "activation groups of " + std::to_string(w.group) +
           " channels that differ from the weight's scale tiles";
  }
  if (reinterpret_cast<uintptr_t>(w.codes) % 16 != 0) return "weight codes not 16-byte aligned";
  return "";
}

std::string linear_native(const Linear& w, const void* x, Float x_kind, int64_t rows,
                          const void* bias, Float bias_kind, void* y, Float y_kind, void* stream) {
  if (rows == 0 || w.grid.rows == 0) return "";
  if (rows <= 16) return launch<1, 1>(w, x, x_kind, rows, bias, bias_kind, y, y_kind, stream);
  return launch<4, 2>(w, x, x_kind, rows, bias, bias_kind, y, y_kind, stream);
}

}  // namespace qforge::plugins::fp8::gpu
