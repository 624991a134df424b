// HqqConfig (transformers, FORMATS.md §2.8) and hqq's BaseQuantizeConfig: parsing with their
// checks and messages, per-module resolution (linear tags, dynamic_config, skip_modules) and the
// quantization_config block transformers writes.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qforge::plugins::hqq {

inline constexpr const char* kMethodHqq = "hqq";

// One layer's weight_quant_params (hqq.core.quantize.hqq_base_quant_config).
struct WeightQuantParams {
  double nbits = 4;                        // 8, 6, 5, 4, 3, 2, 1.58 or 1
  std::optional<int64_t> group_size = 64;  // nullopt = JSON null: one group per row/column
  int axis = 1;
  bool channel_wise = true;
  bool optimize = true;
  bool round_zero = true;  // hqq sets it for nbits == 4 only
  bool view_as_float = false;
};

struct HqqConfig {
  // Either one config for every linear layer, or per linear tag ("self_attn.q_proj"); a tag
  // missing from a per-tag map is not quantized (transformers' prepare_for_hqq_linear).
  std::optional<WeightQuantParams> all;
  std::map<std::string, WeightQuantParams> per_tag;
  std::vector<std::string> skip_modules{"lm_head"};
  // The quant_config objects exactly as read (serialized form), written back unchanged.
  nlohmann::json quant_config_json;
};

// Parses either HqqConfig's constructor arguments (nbits, group_size, axis, view_as_float,
// dynamic_config, skip_modules: what --set writes) or its serialized form
// ({"quant_config": ..., "skip_modules": ...}: what config.json holds; from_dict reads only
// those two keys). Throws sdk::Error(INVALID_ARGUMENT) with hqq's / transformers' messages.
HqqConfig parse_hqq_config(const std::string& config_json);

// hqq_base_quant_config(nbits, group_size, view_as_float, axis): checks and the dict it returns.
WeightQuantParams base_quant_config(const nlohmann::json& args, const std::string& where);
nlohmann::json base_quant_config_json(const WeightQuantParams& p);

// transformers' name_to_linear_tag: drops "model", "layers" and numeric components
// ("model.layers.31.self_attn.k_proj" -> "self_attn.k_proj").
std::string linear_tag(const std::string& module_name);

// The params for module `name`, or nullopt with `reason` when it is not quantized.
std::optional<WeightQuantParams> params_for(const HqqConfig& config, const std::string& name,
                                            std::string& reason);

// {"quant_config": ..., "quant_method": "hqq", "skip_modules": [...]}.
nlohmann::json to_quantization_config(const HqqConfig& config);

// round(2^nbits - 1) as hqq computes max_v (1.58 bits -> 2).
int max_code(double nbits);
// hqq's Quantizer.bit_to_packing: "8bit_u8" (8, 6, 5), "4bit_u8", "3bit_32", "2bit_u8" (2, 1.58),
// "1bit_u8".
std::string packing_for(double nbits);

}  // namespace qforge::plugins::hqq
