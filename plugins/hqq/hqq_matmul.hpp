// y = x @ W^T + b in float32 for the CPU forward: tokens x in times out x in. An AVX2+FMA path
// (4 tokens share each weight row load) runs where the CPU has it, else a scalar loop. The two
// round differently (FMA, summation order); the forward is not bit-exact with PyTorch anyway
// (hqq multiplies in the compute dtype).
#pragma once

#include <cstdint>
#include <functional>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::hqq {

// y[t * out + o] = sum_i x[t * in + i] * w[o * in + i] + (bias ? bias[o] : 0).
void matmul_xwt(const sdk::Call& call, const float* x, int64_t tokens, int64_t in, const float* w,
                int64_t out, const float* bias, float* y);

// The same product with row o of W produced on demand by row(o, buffer of `in` floats): the
// decode path (few tokens) never holds more than one decoded row per thread. Threads take
// output rows; each row is produced once and used by every token.
void matmul_xwt_rows(const sdk::Call& call, const float* x, int64_t tokens, int64_t in, int64_t out,
                     const std::function<void(int64_t, float*)>& row, const float* bias, float* y);

bool matmul_uses_avx2() noexcept;

}  // namespace qforge::plugins::hqq
