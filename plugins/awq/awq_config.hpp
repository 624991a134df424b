// AwqConfig (transformers v4.x, FORMATS.md §2.5): parsing with transformers' post_init checks and
// AWQLinearVersion.from_str, AutoAWQ's 4-bit-only rule, and the quantization_config block AutoAWQ
// writes (to_transformers_dict).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qforge::plugins::awq {

inline constexpr const char* kMethodAwq = "awq";

// The layouts this plugin reads and writes. exllama and ipex are repackings AutoAWQ makes at load
// time; they are refused with their own message (parse_awq_config).
enum class AwqVersion { kGemm, kGemv };

const char* version_name(AwqVersion version) noexcept;  // "gemm" / "gemv"

struct AwqConfig {
  int bits = 4;
  int64_t group_size = 128;  // -1: one group spanning all of in_features
  bool zero_point = true;
  AwqVersion version = AwqVersion::kGemm;
  std::string backend = "autoawq";
  std::optional<std::vector<std::string>> modules_to_not_convert;
  // qforge's explicit opt-in to quantize without calibration statistics (round-to-nearest with
  // AWQ's own quantizer). Never written to quantization_config: AutoAWQ has no such key.
  bool data_free = false;

  int64_t effective_group_size(int64_t in_features) const noexcept {
    return group_size == -1 ? in_features : group_size;
  }
};

// Parses a quantization_config object. Throws sdk::Error(INVALID_ARGUMENT) naming the key for
// every value transformers' AwqConfig or AutoAWQ rejects, and for versions / backends this plugin
// does not read (exllama, ipex, llm-awq). Keys it does not know are ignored here (the host warns
// about keys missing from the manifest's config_keys).
AwqConfig parse_awq_config(const std::string& config_json);

// The block AutoAWQ's AwqConfig.to_transformers_dict() writes: quant_method, zero_point,
// group_size, bits, version (lower-case), modules_to_not_convert.
nlohmann::ordered_json to_quantization_config(const AwqConfig& config);

}  // namespace qforge::plugins::awq
