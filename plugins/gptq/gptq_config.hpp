// GPTQConfig (transformers v5, FORMATS.md §2.4): parsing with transformers' post_init checks and
// messages, plus the checkpoint_format check GPTQModel's loader makes, and the dict to_dict()
// writes (which is what optimum's quantizer round-trips into config.json).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qforge::plugins::gptq {

inline constexpr const char* kMethodGptq = "gptq";

struct GptqConfig {
  int bits = 4;
  int64_t group_size = 128;  // -1: one group spanning all of in_features
  double damp_percent = 0.1;
  bool desc_act = false;
  bool act_group_aware = true;  // forced false when desc_act, as transformers does
  bool sym = true;
  bool true_sequential = true;
  bool static_groups = false;
  // "gptq" (v1: qzeros store zero - 1) or "gptq_v2" (qzeros store zero). The only thing that
  // decides how qzeros are read: the two are byte-compatible shapes, so guessing is impossible.
  std::string checkpoint_format = "gptq";
  nlohmann::json tokenizer;  // null, or the name optimum defaults to the model's
  nlohmann::json dataset;    // null, a list of strings, or "wikitext2" / "c4" / "c4-new"
  nlohmann::json meta;       // kept as given (e.g. {"quantizer": [...]})
  std::string backend = "auto";
  std::optional<int64_t> model_seqlen;
  std::optional<std::string> block_name_to_quantize;
  std::optional<std::string> module_name_preceding_first_block;
  int64_t batch_size = 1;
  nlohmann::json pad_token_id;
  nlohmann::json max_input_length;
  bool cache_block_outputs = true;
  // Lists of module-name lists, one list per sequential step of a block (optimum).
  std::optional<std::vector<std::vector<std::string>>> modules_in_block_to_quantize;
  std::optional<std::vector<std::string>> modules_to_not_convert;

  bool v2() const noexcept { return checkpoint_format == "gptq_v2"; }
  int maxq() const noexcept { return (1 << bits) - 1; }
  // Groups of a layer with `in_features` inputs: ceil(I / group_size); 1 for group_size -1.
  int64_t groups(int64_t in_features) const noexcept;
  int64_t effective_group_size(int64_t in_features) const noexcept;
};

// Parses a quantization_config object. Throws sdk::Error(INVALID_ARGUMENT) naming the key, with
// transformers' message, for everything GPTQConfig.post_init rejects; `bits` is required (it has
// no default in GPTQConfig). The v5 key `format` is read as checkpoint_format.
GptqConfig parse_gptq_config(const std::string& config_json);

// The quantization_config block as transformers' GPTQConfig.to_dict() writes it.
nlohmann::ordered_json to_quantization_config(const GptqConfig& config);

}  // namespace qforge::plugins::gptq
