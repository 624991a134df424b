// FineGrainedFP8Config parsing (see fp8_config.hpp).
#include "fp8_config.hpp"

#include <algorithm>
#include <cctype>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::fp8 {
namespace {

using sdk::Error;

[[noreturn]] void invalid(const std::string& key, const std::string& message,
                          const std::string& fix) {
  throw Error(QF_CODE_INVALID_ARGUMENT, "fp8 config: " + key + ": " + message,
              "transformers' FineGrainedFP8Config.post_init raises ValueError: " + message, fix);
}

std::optional<std::vector<std::string>> string_list(const nlohmann::json& v,
                                                    const std::string& key) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return std::vector<std::string>{v.get<std::string>()};
  if (!v.is_array()) {
    invalid(key, "must be a list of module names or null, got " + v.dump(),
            "write e.g. \"" + key + R"(": ["lm_head"])");
  }
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) {
      invalid(key, "entries must be strings, got " + e.dump(), "list module names as strings");
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

Fp8Config parse_fp8_config(const std::string& config_json) {
  const nlohmann::json j = config_json.empty() ? nlohmann::json::object()
                                               : nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "fp8 config is not a JSON object",
                "got " + config_json.substr(0, 80), "pass the quantization_config object");
  }
  Fp8Config c;
  if (j.contains("quant_method") && j["quant_method"] != kMethodFp8) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "fp8 config: quant_method is " + j["quant_method"].dump(),
                "this quantizer serves quant_method \"fp8\" (FineGrainedFP8Config)",
                "use the plugin that serves " + j["quant_method"].dump());
  }
  if (j.contains("activation_scheme")) {
    const auto& v = j["activation_scheme"];
    if (!v.is_string()) {
      invalid("activation_scheme", "Activation scheme " + v.dump() + " not supported",
              R"(use "dynamic" or "static")");
    }
    std::string s = v.get<std::string>();
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (s != "dynamic" && s != "static") {
      invalid("activation_scheme", "Activation scheme " + s + " not supported",
              R"(use "dynamic" (per-token groups, the default) or "static")");
    }
    c.activation_scheme = s;
  }
  if (j.contains("weight_block_size")) {
    const auto& v = j["weight_block_size"];
    if (v.is_null()) {
      c.weight_block_size = std::nullopt;
    } else {
      if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() ||
          !v[1].is_number_integer()) {
        invalid("weight_block_size", "weight_block_size must be a tuple of two integers",
                "write e.g. \"weight_block_size\": [128, 128], or null for one scale per tensor");
      }
      const auto bm = v[0].get<int64_t>();
      const auto bn = v[1].get<int64_t>();
      if (bm <= 0 || bn <= 0) {
        invalid("weight_block_size", "weight_block_size must be a tuple of two positive integers",
                "write e.g. \"weight_block_size\": [128, 128]");
      }
      c.weight_block_size = std::array<int64_t, 2>{bm, bn};
    }
  }
  if (j.contains("modules_to_not_convert")) {
    c.modules_to_not_convert = string_list(j["modules_to_not_convert"], "modules_to_not_convert");
  }
  if (!c.modules_to_not_convert && j.contains("ignored_layers")) {
    c.modules_to_not_convert = string_list(j["ignored_layers"], "ignored_layers");
  }
  if (j.contains("dequantize")) {
    if (!j["dequantize"].is_boolean()) {
      invalid("dequantize", "must be true or false, got " + j["dequantize"].dump(),
              "write \"dequantize\": true to load the weights as bfloat16");
    }
    c.dequantize = j["dequantize"].get<bool>();
  }
  if (j.contains("scale_fmt")) {
    const auto& v = j["scale_fmt"];
    if (!v.is_string() || (v != "float" && v != "ue8m0")) {
      invalid("scale_fmt", "scale_fmt must be 'float' or 'ue8m0'; got " + v.dump(),
              R"(use "float" (the default) or "ue8m0" (power-of-two scales))");
    }
    c.scale_fmt = v.get<std::string>();
  }
  return c;
}

nlohmann::json to_quantization_config(const Fp8Config& config) {
  nlohmann::json j;
  j["quant_method"] = kMethodFp8;
  j["modules_to_not_convert"] = config.modules_to_not_convert
                                    ? nlohmann::json(*config.modules_to_not_convert)
                                    : nlohmann::json(nullptr);
  j["activation_scheme"] = config.activation_scheme;
  j["weight_block_size"] =
      config.weight_block_size
          ? nlohmann::json::array({(*config.weight_block_size)[0], (*config.weight_block_size)[1]})
          : nlohmann::json(nullptr);
  j["dequantize"] = config.dequantize;
  j["scale_fmt"] = config.scale_fmt;
  return j;
}

}  // namespace qforge::plugins::fp8
