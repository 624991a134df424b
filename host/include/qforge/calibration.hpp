// Calibration capture for calibrated methods (GPTQ, AWQ): runs calibration sequences through an
// unquantized Llama-family checkpoint block by block, hands every linear layer's input
// statistics to the method (a CalibrationConsumer) and installs the weights the method returns,
// so that the next block sees the outputs of the already-quantized one (true-sequential).
//
//   struct Gptq : qforge::runtime::CalibrationConsumer {
//     Result<Replacements> on_group(BlockHandle& block, const LinearGroup& group,
//                                   std::vector<LinearStats>& stats) override { ... }
//   };
//   Gptq gptq;
//   auto summary = qforge::runtime::calibrate(ckpt, std::nullopt, {}, gptq);  // data-free
//
// Memory: the hidden states entering the current block are kept for every calibration sequence
// (N x L x hidden float32; outputs replace inputs batch by batch) and the statistics of one
// group of linears at a time. Semantics, defaults and the data-free sampler: docs/calibration.md.
//
// LibTorch-free like runtime.hpp: results are plain float vectors.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"
#include "qforge/runtime.hpp"

namespace qforge::runtime {

// Row-major float32 [rows, cols].
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;
  float at(int64_t r, int64_t c) const { return data[static_cast<size_t>(r * cols + c)]; }
};

// Data-free calibration: sequences sampled from the unquantized model itself.
struct DataFreeOptions {
  int64_t num_sequences = 16;
  int64_t seq_len = 128;  // tokens per sequence, the start token included
  uint64_t seed = 0;
  double temperature = 1.0;
  int64_t top_k = 0;  // 0: the whole vocabulary
  // The first token of every sequence; empty: config.json bos_token_id (the first one if it is
  // a list), else eos_token_id, else 0.
  std::optional<int64_t> start_token;
};

enum class HessianPrecision { kNone, kFloat32, kFloat64 };

// Statistics of one linear layer's input over every calibration token.
struct LinearStats {
  std::string module;  // checkpoint name, e.g. "model.layers.0.self_attn.q_proj"
  int64_t in_features = 0, out_features = 0;
  int64_t tokens = 0;     // input rows seen
  int64_t sequences = 0;  // GPTQ's nsamples: H is normalized by this count
  // GPTQ's H = 2/n * sum over tokens of x x^T, [in, in] row-major, accumulated per batch as
  // add_batch does (H *= n/(n+m); x *= sqrt(2/(n+m)); H += x x^T; n counts sequences). One of
  // the two is filled, as CalibrationOptions::hessian says.
  std::vector<float> hessian32;
  std::vector<double> hessian64;
  std::vector<float> mean_abs;  // [in]: mean |x| over tokens (AWQ's x_mean); empty unless asked
  // At most max_sample_tokens input rows [k, in], evenly strided over all tokens in order.
  Matrix sample;
};

// Linears whose statistics are handed over together (GPTQ's true-sequential order for Llama:
// [q, k, v] -> [o] -> [gate, up] -> [down]).
struct LinearGroup {
  int64_t block = 0;
  int64_t index = 0;                 // 0-based within the block
  std::vector<std::string> modules;  // checkpoint names
};

// Dense float32 [out, in] weights by module name, for linears of the current block.
using Replacements = std::map<std::string, std::vector<float>>;

// What BlockHandle::run evaluates (AutoAWQ's module2inspect).
enum class BlockPart {
  kAttention,  // input_layernorm output -> o_proj output (self_attn), from the block input
  kMlp,        // post_attention_layernorm output -> down_proj output (mlp)
  kLinear,     // one linear: its input -> its output
};

enum class BlockNorm { kInput, kPostAttention };

// The block being calibrated, for the consumer's own evaluations (AWQ's scale and clip search).
// Weights are the block's current ones: the original ones plus what was installed so far.
class BlockHandle {
 public:
  virtual ~BlockHandle() = default;
  virtual int64_t index() const = 0;
  virtual std::vector<std::string> linears() const = 0;        // checkpoint names, in block order
  virtual Matrix weight(const std::string& module) const = 0;  // [out, in]
  virtual std::vector<float> bias(const std::string& module) const = 0;  // empty: none
  virtual std::vector<float> norm(BlockNorm which) const = 0;            // [hidden]
  // Runs `part` on the block inputs of (at most CalibrationOptions::run_sequences) calibration
  // sequences with `overrides` in place of the named linears' weights, and returns the part's
  // output rows (tokens of all those sequences in order). `module` names the linear for kLinear.
  // An AWQ candidate scale s is evaluated as the weight Q(W diag(s)) diag(1/s) on the original
  // inputs, which equals Q(W diag(s)) applied to x / s.
  virtual Result<Matrix> run(BlockPart part, const Replacements& overrides,
                             const std::string& module = "") = 0;
};

class CalibrationConsumer {
 public:
  virtual ~CalibrationConsumer() = default;
  // Called before block `block.index()`'s first group.
  virtual Status begin_block(BlockHandle& block) {
    (void)block;
    return ok_status();
  }
  // The statistics of one group (stats in group.modules order; the consumer may move from
  // them). Returns replacement weights for linears of this block, or none to keep them.
  virtual Result<Replacements> on_group(BlockHandle& block, const LinearGroup& group,
                                        std::vector<LinearStats>& stats) = 0;
  // Called after the block's replacements are installed, before its outputs are computed.
  virtual Status end_block(BlockHandle& block) {
    (void)block;
    return ok_status();
  }
};

struct BlockProgress {
  int64_t block = 0, blocks = 0;
  int64_t sequences = 0, tokens = 0;
};

struct CalibrationOptions {
  RuntimeOptions runtime;
  DataFreeOptions data_free;  // used when calibrate() gets no input
  HessianPrecision hessian = HessianPrecision::kFloat32;
  bool mean_abs = false;
  int64_t max_sample_tokens = 0;  // 0: no sample
  // true: a group's replacements are installed before the next group is captured (GPTQ's
  // true_sequential). false: every group of a block is captured from the original block and
  // the replacements are installed after the block's last group.
  bool true_sequential = true;
  int64_t batch_size = 1;     // sequences per forward pass (consecutive ones of equal length)
  int64_t run_sequences = 0;  // BlockHandle::run's inputs: the first ones; 0: all
  bool keep_logits = false;   // CalibrationSummary::logits of the updated model
  // Called as each block starts; empty: one log line per block.
  std::function<void(const BlockProgress&)> progress;
};

struct CalibrationSummary {
  int64_t blocks = 0, sequences = 0, tokens = 0;
  int64_t replaced = 0;  // linears whose weights were replaced
  TokenBatch input;      // the calibration sequences (sampled ones for data-free)
  // keep_logits: the logits of the model with every replacement installed, one [L, vocab]
  // matrix per sequence.
  std::vector<Matrix> logits;
};

// Runs the calibration. `input`: calibration sequences (e.g. read_token_file), each of two or
// more ids in [0, vocab); none: data-free sequences (options.data_free). The checkpoint must be
// unquantized and of the Llama family. A consumer's error stops the run and is returned.
Result<CalibrationSummary> calibrate(const Checkpoint& checkpoint,
                                     const std::optional<TokenBatch>& input,
                                     const CalibrationOptions& options,
                                     CalibrationConsumer& consumer);

// The data-free sequences calibrate() would use: sampled autoregressively (KV cache) from the
// unquantized model; same options, same ids.
Result<TokenBatch> sample_calibration_tokens(const Checkpoint& checkpoint,
                                             const DataFreeOptions& options,
                                             const RuntimeOptions& runtime = {});

}  // namespace qforge::runtime
