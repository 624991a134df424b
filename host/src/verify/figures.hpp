// The output-quality figures of `qforge verify`, in plain C++ over float vectors (so libqforge
// needs no LibTorch): cosine similarity, KL divergence, top-1 agreement and perplexity of two
// models' logits on the same inputs, greedy-generation agreement, weight reconstruction error,
// and the default input sequences. Private to host/src/verify; unit-tested directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "qforge/error.hpp"
#include "qforge/runtime.hpp"
#include "qforge/tensor.hpp"

namespace qforge::verify {

// a.b / (|a| |b|) in double. Two zero vectors are identical (1); one zero vector against a
// non-zero one shares no direction (0).
double cosine_similarity(const float* a, const float* b, size_t n);
// KL(softmax(p_logits) || softmax(q_logits)) in nats, with log-sum-exp in double (logits of any
// magnitude; never negative, up to rounding, which is clamped).
double kl_divergence(const float* p_logits, const float* q_logits, size_t n);
// Index of the largest value; the first one on ties (as torch.argmax on CPU).
size_t argmax(const float* v, size_t n);
// -log softmax(logits)[index] in nats.
double negative_log_likelihood(const float* logits, size_t n, size_t index);

struct LogitFigures {
  double mean_cosine = 0;  // over every position of every sequence
  double mean_kl = 0;      // KL(ORIG || QUANT), mean over positions
  double top1 = 0;         // share of positions whose argmax agrees
  double ppl_original = 0, ppl_quantized = 0;
  double ppl_delta = 0;  // (ppl_quantized - ppl_original) / ppl_original
  int64_t positions = 0;
  int64_t predicted = 0;  // next-token predictions scored for perplexity
};
// Compares [B, T, V] logits of ORIG and QUANT on `ids` (B sequences of T ids; perplexity scores
// position t's logits against ids[b][t + 1]). Shapes must agree with each other and with ids.
Result<LogitFigures> compare_logits(const runtime::Activations& original,
                                    const runtime::Activations& quantized,
                                    const runtime::TokenBatch& ids);

// Mean over rows of the cosine of [B, T, H] activations (pooled embeddings: T = 1).
Result<double> mean_row_cosine(const runtime::Activations& original,
                               const runtime::Activations& quantized);

// Greedy continuations diverge for good once one token differs (the contexts differ from
// there on), so agreement is the length of the common prefix over `n` (1 when both agree on
// all n tokens).
double prefix_agreement(const std::vector<int64_t>& a, const std::vector<int64_t>& b, size_t n);

// ||reference - approximation||_F / ||reference||_F; 0 when both are zero, +inf when only the
// reference is.
double relative_error(const std::vector<float>& reference, const std::vector<float>& approximation);

// Any floating tensor (F32, F16, BF16, F64) as float32. Other dtypes are bad input naming `name`.
Result<std::vector<float>> to_float32(const TensorView& tensor, const std::string& name);

// Default inputs for (f): `count` sequences of `length` ids uniform in [0, vocab), from a fixed
// seed (splitmix64), identical on every machine. docs/verify.md.
runtime::TokenBatch default_token_batch(int64_t vocab, int64_t count, int64_t length,
                                        uint64_t seed = 0x71f0'5eedULL);

}  // namespace qforge::verify
