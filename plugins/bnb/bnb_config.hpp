// BitsAndBytesConfig: parsing with transformers' checks, and the dict `to_dict()` writes.
// Shared by bitsandbytes_4bit and bitsandbytes_8bit (FORMATS.md §2.1).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qforge::plugins::bnb {

// Which of the two methods an instance serves.
enum class BnbBits { k4, k8 };

inline constexpr const char* kMethod4Bit = "bitsandbytes_4bit";
inline constexpr const char* kMethod8Bit = "bitsandbytes_8bit";
// The quant_method transformers writes to config.json for both methods.
inline constexpr const char* kHfQuantMethod = "bitsandbytes";

const char* method_name(BnbBits bits) noexcept;

// The parsed config. Field names and defaults are BitsAndBytesConfig's; dtype fields hold the
// canonical torch name ("float32", never "float" or "torch.float32").
struct BnbConfig {
  bool load_in_8bit = false;
  bool load_in_4bit = false;
  double llm_int8_threshold = 6.0;
  std::optional<std::vector<std::string>> llm_int8_skip_modules;  // nullopt = JSON null
  bool llm_int8_enable_fp32_cpu_offload = false;
  bool llm_int8_has_fp16_weight = false;
  std::string bnb_4bit_compute_dtype = "float32";  // None -> torch.float32
  std::string bnb_4bit_quant_type = "fp4";         // note: not nf4
  bool bnb_4bit_use_double_quant = false;
  std::string bnb_4bit_quant_storage = "uint8";  // None -> torch.uint8
};

// Parses a quantization_config JSON object for the method `bits`. Throws sdk::Error with
// INVALID_ARGUMENT naming the key for everything transformers rejects (TypeError and ValueError
// alike), plus a config that selects the other method. When neither load_in flag is set, the
// method decides (as `quant_method: bitsandbytes_4bit` does in transformers' dispatch). Unknown
// keys are ignored here: the host warns about them using the manifest's config_keys.
BnbConfig parse_bnb_config(const std::string& config_json, BnbBits bits);

// The quantization_config block exactly as BitsAndBytesConfig.to_dict() writes it: the public
// and private load_in flags, dtypes as strings and quant_method "bitsandbytes".
nlohmann::json to_quantization_config(const BnbConfig& config);

// Canonical torch dtype name for a name `getattr(torch, name)` accepts ("half" -> "float16");
// nullopt when torch has no such dtype.
std::optional<std::string> canonical_torch_dtype(const std::string& name);

}  // namespace qforge::plugins::bnb
