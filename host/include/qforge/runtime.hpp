// Runs a checkpoint, dense or quantized, on the CPU: the Llama family as a causal LM (RMSNorm,
// rotary embeddings in HF's "halves" layout with rope_theta, GQA, SwiGLU, tied embeddings, KV
// cache) and BERT encoders (post-LN, GELU, absolute + token-type embeddings, mean pooling).
//
//   qforge::Host host;
//   auto ckpt = qforge::Checkpoint::open("model-nf4").value();
//   auto model = qforge::runtime::Model::load(host, ckpt).value();
//   auto logits = model.forward({{1, 2, 3}}).value();           // [1, 3, vocab]
//   auto ids = model.generate({1, 2, 3}, 32).value();          // greedy, 32 new ids
//
// Every linear layer is dense (at::linear on the stored weight, upcast to the compute dtype) or
// quantized: it calls its method plugin's linear_forward through the C ABI, or the plugin's
// dequantize + at::linear where the plugin has no forward. Which modules are quantized comes
// from the checkpoint's quantization_config and the architecture map, as `qforge inspect` sees it.
//
// The public API is LibTorch-free (results are plain float vectors) so that an embedder links
// the `qforge::runtime` library without compiling against LibTorch headers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"
#include "qforge/host.hpp"

namespace qforge::runtime {

enum class ModelKind { kCausalLM, kEncoder };

struct RuntimeOptions {
  std::vector<std::filesystem::path> architecture_dirs;  // empty: default_architecture_dirs()
  int num_threads = 0;                                   // 0: every core
  // Run quantized layers whose hardware is missing by emulation (--allow-emulation); without it
  // such a plugin refuses to load the model (FP8 on a CPU).
  bool allow_emulation = false;
  // Activations and dense weights are computed in float32 (the reference); quantized layers
  // get float32 inputs too.
};

// Row-major float32 [batch, seq, width].
struct Activations {
  int64_t batch = 0, seq = 0, width = 0;
  std::vector<float> data;
  float at(int64_t b, int64_t t, int64_t i) const { return data[((b * seq) + t) * width + i]; }
};

// Sequences of one batch must have equal lengths (no padding support: the caller batches by
// length). Ids outside [0, vocab) are bad input naming the sequence and position.
using TokenBatch = std::vector<std::vector<int64_t>>;

struct Perplexity {
  double mean_nll = 0.0;  // natural log, averaged over every predicted token
  double perplexity = 0.0;
  int64_t tokens = 0;  // predicted tokens (each sequence of length L predicts L - 1)
};

class Model {
 public:
  // Fails (bad_input, exit 4) for an architecture the runtime cannot run, naming the family and
  // the supported ones; for a quantized checkpoint whose method no plugin serves (exit 3).
  static Result<Model> load(Host& host, const Checkpoint& checkpoint,
                            const RuntimeOptions& options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  ModelKind kind() const noexcept;
  const std::string& family() const noexcept;  // "llama" (also mistral, qwen2), "bert"
  int64_t vocab_size() const noexcept;
  int64_t hidden_size() const noexcept;
  int64_t num_layers() const noexcept;
  // Modules run through a plugin, in checkpoint order (empty for a dense checkpoint).
  std::vector<std::string> quantized_modules() const;

  // Causal LM: logits [B, T, vocab]. Encoder: last hidden state [B, T, hidden].
  Result<Activations> forward(const TokenBatch& ids);
  // Encoder only: mean-pooled last hidden state [B, 1, hidden] (every token attended).
  Result<Activations> embed(const TokenBatch& ids);
  // Causal LM only: greedy decoding with a KV cache; returns the new ids (stops early after
  // `eos` when given).
  Result<std::vector<int64_t>> generate(const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                                        std::optional<int64_t> eos = std::nullopt);
  // Causal LM only: mean next-token NLL over the sequences (each of length >= 2; lengths may
  // differ, each sequence runs on its own).
  Result<Perplexity> evaluate(const TokenBatch& sequences);

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Token-id files for `qforge eval --ids-file` and verify's inputs: one sequence per line, ids
// separated by spaces or commas; '#' starts a comment. Errors name the line.
Result<TokenBatch> read_token_file(const std::filesystem::path& path);

}  // namespace qforge::runtime
