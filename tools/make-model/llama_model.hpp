// A small, deterministic Llama-shaped HuggingFace checkpoint: config.json as transformers'
// LlamaConfig.save_pretrained writes it, and tensors named and shaped as LlamaForCausalLM's
// state dict, in its order. Weights are N(0, initializer_range) (LlamaPreTrainedModel's init),
// RMSNorm weights 1.0. Identical options give identical bytes on every machine.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"

namespace qforge::make_model {

struct LlamaSpec {
  int64_t hidden = 512;
  int64_t intermediate = 1536;
  int64_t layers = 8;
  int64_t heads = 8;
  int64_t kv_heads = 4;
  int64_t vocab = 1024;
  std::string dtype = "bf16";  // bf16 | fp16 | fp32
  uint64_t seed = 0;
  bool tie_embeddings = false;
  double initializer_range = 0.02;
};

// Checks sizes and dtype: positive, heads divide hidden, kv_heads divide heads, element counts
// that fit in memory. Errors are bad_input naming the flag.
Status validate(const LlamaSpec& spec);

// The config.json object (LlamaConfig keys, torch_dtype from spec.dtype).
nlohmann::json llama_config(const LlamaSpec& spec);

enum class Init { kNormal, kOnes };

struct GeneratedTensor {
  OutputTensor out;
  Init init = Init::kNormal;
  bool linear = false;  // a decoder-layer linear weight (what a quantizer targets; no lm_head)
};

// Every tensor, in LlamaForCausalLM state-dict order (lm_head last, absent when tied).
std::vector<GeneratedTensor> llama_tensors(const LlamaSpec& spec);

// One tensor's bytes in spec.dtype (little endian).
std::vector<uint8_t> generate_tensor(const LlamaSpec& spec, const GeneratedTensor& tensor);

struct MakeSummary {
  WriteSummary written;
  int64_t parameters = 0;
  int64_t linear_parameters = 0;  // decoder-layer linear weights (lm_head excluded)
  double linear_fraction() const {
    return parameters ? static_cast<double>(linear_parameters) / static_cast<double>(parameters)
                      : 0.0;
  }
};

// Writes the checkpoint atomically through CheckpointWriter.
Result<MakeSummary> write_llama_checkpoint(const LlamaSpec& spec, const std::filesystem::path& out,
                                           const WriterOptions& options);

}  // namespace qforge::make_model
