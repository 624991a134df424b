// FbgemmFp8Config parsing (see fbgemm_config.hpp).
#include "fbgemm_config.hpp"

#include <cmath>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::fp8 {

FbgemmFp8Config parse_fbgemm_config(const std::string& config_json) {
  using sdk::Error;
  const nlohmann::json j = config_json.empty() ? nlohmann::json::object()
                                               : nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "fbgemm_fp8 config is not a JSON object",
                "got " + config_json.substr(0, 80), "pass the quantization_config object");
  }
  if (j.contains("quant_method") && j["quant_method"] != kMethodFbgemmFp8) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "fbgemm_fp8 config: quant_method is " + j["quant_method"].dump(),
                "this quantizer serves quant_method \"fbgemm_fp8\" (FbgemmFp8Config)",
                "use the plugin that serves " + j["quant_method"].dump());
  }
  FbgemmFp8Config c;
  if (j.contains("activation_scale_ub")) {
    const auto& v = j["activation_scale_ub"];
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0.0) {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "fbgemm_fp8 config: activation_scale_ub must be a positive number",
                  "got " + v.dump() + "; it caps each activation row's max |x| before scaling",
                  "write e.g. \"activation_scale_ub\": 1200.0 (the default)");
    }
    c.activation_scale_ub = v.get<double>();
  }
  if (j.contains("modules_to_not_convert") && !j["modules_to_not_convert"].is_null()) {
    const auto& v = j["modules_to_not_convert"];
    std::vector<std::string> names;
    if (!v.is_array()) {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "fbgemm_fp8 config: modules_to_not_convert must be a list of module names",
                  "got " + v.dump(), R"(write e.g. "modules_to_not_convert": ["lm_head"])");
    }
    for (const auto& e : v) {
      if (!e.is_string()) {
        throw Error(QF_CODE_INVALID_ARGUMENT,
                    "fbgemm_fp8 config: modules_to_not_convert entries must be strings",
                    "got " + e.dump(), "list module names as strings");
      }
      names.push_back(e.get<std::string>());
    }
    c.modules_to_not_convert = names;
  }
  return c;
}

nlohmann::json to_quantization_config(const FbgemmFp8Config& config) {
  nlohmann::json j;
  j["quant_method"] = kMethodFbgemmFp8;
  j["activation_scale_ub"] = config.activation_scale_ub;
  j["modules_to_not_convert"] = config.modules_to_not_convert
                                    ? nlohmann::json(*config.modules_to_not_convert)
                                    : nlohmann::json(nullptr);
  return j;
}

}  // namespace qforge::plugins::fp8
