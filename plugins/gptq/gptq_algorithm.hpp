// The GPTQ algorithm (Frantar et al.; AutoGPTQ gptq.py `fasterquant`, FORMATS.md §2.4 items 2-9)
// on one Linear: the weight W [O, I] and the Hessian H = 2/N·XᵀX [I, I] of its N calibration
// inputs X. Columns are quantized one at a time with GPTQ's quantizer (gptq_rtn.hpp) and each
// column's error, weighted by the inverse Hessian, is pushed onto the columns not yet quantized
// (within a block of 128 at once, onto later blocks lazily by one matrix product per block).
// Fills the same Unpacked that write_checkpoint packs, so that dequantizing it (float32 scale ·
// (code − zero), with g_idx) gives exactly the fake-quantized weight the algorithm produced.
#pragma once

#include <cstdint>
#include <qforge/qf_plugin.hpp>
#include <vector>

#include "gptq_config.hpp"
#include "gptq_layout.hpp"

namespace qforge::plugins::gptq {

inline constexpr int64_t kGptqBlockSize = 128;  // fasterquant's default `blocksize`

struct GptqOutcome {
  Unpacked layer;
  int64_t dead_columns = 0;  // inputs with diag(H) == 0 (never active): weight zeroed
  int64_t zero_clamped = 0;  // v1 groups whose zero point 0 became 1 (gptq_rtn.hpp)
  double damp = 0.0;         // damp_percent · mean(diag(H)) added to the diagonal
};

// Runs GPTQ with config's bits, group_size, sym, desc_act (act-order), static_groups and
// damp_percent. `w` is [out, in] float32 (nn.Linear layout); `h` is [in, in] (symmetric; its
// lower triangle is what the factorization reads) and is consumed. When `fake_quantized` is
// given it receives the quantized weight [out, in] (AutoGPTQ's Q). Throws INVALID_ARGUMENT on a
// non-finite weight or Hessian entry and FAILED_PRECONDITION when H + damp·I is not positive
// definite (AutoGPTQ raises there too; the fix is a larger damp_percent or more calibration
// data). Output rows run in parallel through `call`; the result does not depend on the split.
GptqOutcome quantize_gptq(const sdk::Call& call, const float* w, int64_t out, int64_t in,
                          std::vector<double> h, const GptqConfig& config,
                          std::vector<float>* fake_quantized = nullptr,
                          int64_t block_size = kGptqBlockSize);

}  // namespace qforge::plugins::gptq
