// FineGrainedFP8Config (transformers v5, FORMATS.md §2.6): parsing with transformers' checks and
// messages, and the dict its to_dict() writes.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qforge::plugins::fp8 {

inline constexpr const char* kMethodFp8 = "fp8";

struct Fp8Config {
  std::string activation_scheme = "dynamic";  // "dynamic" or "static", lower-cased
  // Tile (rows, cols) of one weight scale; nullopt = JSON null = one scale per tensor.
  std::optional<std::array<int64_t, 2>> weight_block_size = std::array<int64_t, 2>{128, 128};
  std::optional<std::vector<std::string>> modules_to_not_convert;  // nullopt = JSON null
  bool dequantize = false;
  std::string scale_fmt = "float";  // "float" or "ue8m0" (power-of-two scales)
};

// Parses a quantization_config object. Throws sdk::Error(INVALID_ARGUMENT) naming the key for
// everything FineGrainedFP8Config.post_init rejects, with its message. `ignored_layers` is read
// as modules_to_not_convert (v5 kwarg). Unknown keys (DeepSeek-V3's "fmt") are ignored: the host
// warns about them using the manifest's config_keys.
Fp8Config parse_fp8_config(const std::string& config_json);

// The quantization_config block as FineGrainedFP8Config.to_dict() writes it (its __dict__).
nlohmann::json to_quantization_config(const Fp8Config& config);

}  // namespace qforge::plugins::fp8
