// Quantization-config resolution with HF Transformers semantics
// (FORMATS.md §1.5 dispatch, §1.6 merge_quantization_configs).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/error.hpp"

namespace qforge {

// What the resolver needs to know of each installed method (from the manifests).
struct MethodCatalogEntry {
  std::string quant_method;                     // "bitsandbytes_4bit"
  std::vector<std::string> aliases;             // other quant_method spellings
  std::vector<std::string> loading_attributes;  // keys a user may override on pre-quantized
  std::vector<std::string> known_keys;          // config keys the method understands ({} = all)
  // Presets: "nf4" -> {"quant_method":"bitsandbytes", "load_in_4bit":true, ...}
  std::map<std::string, nlohmann::json> presets;
};

struct ConfigRequest {
  // config.json of the checkpoint (whole object), if any.
  std::optional<nlohmann::json> model_config;
  // --method NAME: a quant_method, an alias or a preset.
  std::optional<std::string> method;
  // --config FILE contents, already parsed (YAML or JSON; see load_user_config).
  std::optional<nlohmann::json> user_config;
  // --set key=value, in order; values are parsed as JSON when they parse, else taken as strings.
  std::vector<std::pair<std::string, std::string>> overrides;
};

struct ResolvedConfig {
  bool quantize = false;              // false: nothing to do (no config anywhere)
  bool pre_quantized = false;         // the checkpoint carries the config
  std::string quant_method;           // canonical: "bitsandbytes_4bit", never "bitsandbytes"
  nlohmann::json config;              // the merged quantization_config object
  std::vector<std::string> warnings;  // merge notices, ignored / unknown keys
  std::string note;                   // for quantize == false: why
};

// Reads a user config file: YAML or JSON (chosen by content, not extension). A top-level
// "quantization_config" key is unwrapped. Errors name the file, line and key.
Result<nlohmann::json> load_user_config(const std::string& path);

// Parses "key=value" (value: JSON if it parses, else a string; dotted keys nest).
Result<std::pair<std::string, std::string>> parse_set_flag(const std::string& flag);

// Resolves the config: checkpoint wins; user may override only loading attributes (the rest is
// ignored with a warning naming the keys); bitsandbytes dispatches to _4bit/_8bit; an unknown
// method is an error naming the installed ones. Conflicting bnb flags (load_in_4bit and
// load_in_8bit) are an INVALID_ARGUMENT error with exit code 3 (pre-flight validation).
Result<ResolvedConfig> resolve_config(const ConfigRequest& request,
                                      const std::vector<MethodCatalogEntry>& catalog);

}  // namespace qforge
