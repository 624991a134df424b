// CPU kernels of hqq's quantizer on raw group-major floats (groups x g, group j's k-th element at
// [j * g + k]): the min/max scan of the init, one step of the proximal zero-point solver, and
// the final codes. Plain functions over a range of groups [j0, j1), callable without the plugin
// ABI (tests pin one ISA through the per-ISA namespaces).
//
// Rounding (note [hqq vector rounding]): every ISA performs hqq's float32 operations one by one,
// in hqq's order, with no FMA where PyTorch rounds twice (w * s + z is a multiply then an add;
// the shrink is a multiply then a subtract). Two things may differ from the scalar reference in
// the last bit, rarely:
//  * |x|^(p-1): scalar calls glibc's powf (< 1 ulp, not always correctly rounded: ~0.06 % of
//    random inputs are 1 ulp off); the vector paths evaluate exp2((p-1) * log2|x|) in double
//    (FMA inside the polynomials is fine there) and round once to float: correctly rounded but
//    within ~1e-13 relative of a midpoint (PyTorch's Sleef pow is a third, 1-ulp, variant);
//  * the group sums (error and zero mean) are accumulated in double in lane order, not element
//    order; converting the double to float hides that except next to a float midpoint.
// The shrink is 0 for |x| <= (1/beta)^(1/(2-p)) (0.1^(1/1.3) ~ 0.17 for hqq's defaults, far
// above a quantization error of real weights): the vector paths skip the pow for vectors whose
// lanes are all well below that, which changes nothing since the scalar result is 0 as well.
//
// ISA variants: scalar is the reference; AVX2+FMA and AVX-512F carry per-function target
// attributes, so one binary runs on any x86-64. select_isa picks the best the CPU has, or
// QFORGE_HQQ_KERNEL=scalar|avx2|avx512 (an unsupported or unknown choice falls back to the best
// supported, never to a crash).
#pragma once

#include <cstdint>

namespace qforge::plugins::hqq::cpu {

enum class Isa { kScalar, kAvx2, kAvx512 };

const char* isa_name(Isa isa) noexcept;
bool isa_supported(Isa isa) noexcept;
Isa select_isa() noexcept;

// What one solver step needs besides the weights.
struct StepArgs {
  const float* w = nullptr;  // group-major weights
  int64_t g = 0;             // group size
  const float* scale = nullptr;
  const float* zero = nullptr;
  float max_v = 15.0f;
  float inv_beta = 0.1f;
  float p_minus_1 = -0.3f;
};

// lo[j] = min, hi[j] = max of group j, j in [j0, j1).
void group_minmax(Isa isa, const float* w, int64_t g, int64_t j0, int64_t j1, float* lo,
                  float* hi) noexcept;

// For j in [j0, j1): err[j] = sum |W - W_r| and next[j] = float(mean(W_q - (W - W_e) * s)) with
// W_q = clamp(round(W * s + z), 0, max_v), W_r = (W_q - z) / s, W_e = shrink(W - W_r).
void proximal_step(Isa isa, const StepArgs& a, int64_t j0, int64_t j1, double* err,
                   float* next) noexcept;

// codes[j * g + k] = clamp(round(w * s + z), 0, max_v) for j in [j0, j1).
void quantize_codes(Isa isa, const float* w, int64_t g, int64_t j0, int64_t j1, const float* scale,
                    const float* zero, float max_v, uint8_t* codes) noexcept;

// The |x| at or below which sign(x) * relu(|x| - inv_beta * |x|^(p-1)) is certainly 0: half the
// exact bound inv_beta^(1/(2-p)), so inv_beta * |x|^(p-1) exceeds |x| by a factor >= 2^(2-p),
// far beyond any rounding. 0 when the parameters give no usable range (p - 1 > 0.5, beta <= 0,
// a bound that is subnormal or not finite): the vector paths then hand groups to the scalar one.
float shrink_zero_bound(float inv_beta, float p_minus_1) noexcept;

namespace scalar {
void group_minmax(const float* w, int64_t g, int64_t j0, int64_t j1, float* lo, float* hi) noexcept;
void proximal_step(const StepArgs& a, int64_t j0, int64_t j1, double* err, float* next) noexcept;
void quantize_codes(const float* w, int64_t g, int64_t j0, int64_t j1, const float* scale,
                    const float* zero, float max_v, uint8_t* codes) noexcept;
}  // namespace scalar
namespace avx2 {
void group_minmax(const float* w, int64_t g, int64_t j0, int64_t j1, float* lo, float* hi) noexcept;
void proximal_step(const StepArgs& a, int64_t j0, int64_t j1, double* err, float* next) noexcept;
void quantize_codes(const float* w, int64_t g, int64_t j0, int64_t j1, const float* scale,
                    const float* zero, float max_v, uint8_t* codes) noexcept;
// |x|^p for x > 0 normal: the vector pow of note [hqq vector rounding], 8 lanes (tests).
void pow8(const float* x, float p, float* out) noexcept;
}  // namespace avx2
namespace avx512 {
void group_minmax(const float* w, int64_t g, int64_t j0, int64_t j1, float* lo, float* hi) noexcept;
void proximal_step(const StepArgs& a, int64_t j0, int64_t j1, double* err, float* next) noexcept;
void quantize_codes(const float* w, int64_t g, int64_t j0, int64_t j1, const float* scale,
                    const float* zero, float max_v, uint8_t* codes) noexcept;
}  // namespace avx512

}  // namespace qforge::plugins::hqq::cpu
