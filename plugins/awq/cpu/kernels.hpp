// CPU kernels of the AWQ plugin on raw pointers: dequantizing GEMM-packed qweight rows (Note [AWQ
// pack order], awq_pack.hpp) and the linear's float32 accumulation. Plain functions, callable
// without the plugin ABI.
//
// Every ISA gives the same bits as the scalar path: a dequantized weight is one float32 product
// scale * float(code - zero) (the integer difference is exact), the sum of each output runs over
// the inputs in order from +0 with a separate multiply and add (the plugin builds with
// -ffp-contract=off and the vector code uses no FMA), and vector lanes span outputs, never
// inputs, so no sum is reassociated. Tests compare the paths for equality.
//
// scalar is the reference; AVX2 and AVX-512 carry per-function target attributes, so one binary
// runs on any x86-64. select_isa picks the best the CPU has (AVX-512 needs F), or
// QFORGE_AWQ_KERNEL=scalar|avx2|avx512 (tests; an unsupported or unknown choice falls back to the
// best supported).
#pragma once

#include <cstdint>

namespace qforge::plugins::awq::cpu {

enum class Isa { kScalar, kAvx2, kAvx512 };

const char* isa_name(Isa isa) noexcept;
bool isa_supported(Isa isa) noexcept;
Isa select_isa() noexcept;

// A packed AWQ weight as the kernels read it: GEMM words [in, out/8] (out % 8 == 0), true zero
// points and scales [in / group_size, out].
struct PackedMatrix {
  const int32_t* qweight = nullptr;
  int64_t in = 0, out = 0;
  int64_t group_size = 0;
  const int32_t* zeros = nullptr;
  const float* scales = nullptr;
};

// wt[(i - i0) * ldw + (o - o0)] = scales[g][o] * float(code(i, o) - zeros[g][o]),
// g = i / group_size, for inputs i in [i0, i1) and outputs o in [o0, o1).
void dequantize_block(Isa isa, const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0,
                      int64_t o1, float* wt, int64_t ldw) noexcept;

// y[t * ldy + o] += sum over i in [0, k) in order of x[t * ldx + i] * wt[i * ldw + (o - o0)],
// each product rounded then added, for tokens t in [0, tokens) and o in [o0, o1).
void accumulate(Isa isa, const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept;

namespace scalar {
void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0, int64_t o1,
                      float* wt, int64_t ldw) noexcept;
void accumulate(const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept;
}  // namespace scalar
namespace avx2 {
void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0, int64_t o1,
                      float* wt, int64_t ldw) noexcept;
void accumulate(const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept;
}  // namespace avx2
namespace avx512 {
void dequantize_block(const PackedMatrix& w, int64_t i0, int64_t i1, int64_t o0, int64_t o1,
                      float* wt, int64_t ldw) noexcept;
void accumulate(const float* wt, int64_t k, int64_t ldw, const float* x, int64_t ldx,
                int64_t tokens, int64_t o0, int64_t o1, float* y, int64_t ldy) noexcept;
}  // namespace avx512

}  // namespace qforge::plugins::awq::cpu
