// FbgemmFp8Config (FORMATS.md §2.7): parsing and the dict its to_dict() writes.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qforge::plugins::fp8 {

inline constexpr const char* kMethodFbgemmFp8 = "fbgemm_fp8";

struct FbgemmFp8Config {
  double activation_scale_ub = 1200.0;  // upper bound of an activation row's max |x|
  std::optional<std::vector<std::string>> modules_to_not_convert;  // nullopt = JSON null
};

// FbgemmFp8Config has no post_init checks; types are checked here so a wrong one fails early
// with the key named (INVALID_ARGUMENT). Unknown keys are left to the host's config_keys warning.
FbgemmFp8Config parse_fbgemm_config(const std::string& config_json);

// {quant_method: "fbgemm_fp8", activation_scale_ub, modules_to_not_convert}.
nlohmann::json to_quantization_config(const FbgemmFp8Config& config);

}  // namespace qforge::plugins::fp8
