// AwqConfig parsing (see awq_config.hpp).
#include "awq_config.hpp"

#include <algorithm>
#include <cctype>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::awq {
namespace {

using sdk::Error;

[[noreturn]] void invalid(const std::string& key, const std::string& message,
                          const std::string& why, const std::string& fix) {
  throw Error(QF_CODE_INVALID_ARGUMENT, "awq config: " + key + ": " + message, why, fix);
}

bool get_bool(const nlohmann::json& j, const char* key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) {
    invalid(key, std::string("must be true or false, got ") + j[key].dump(),
            "AwqConfig stores it as a bool", std::string("write \"") + key + "\": true or false");
  }
  return j[key].get<bool>();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

AwqVersion parse_version(const nlohmann::json& v) {
  if (!v.is_string()) {
    invalid("version", "must be a string, got " + v.dump(),
            "AWQLinearVersion.from_str reads a name", "write \"gemm\" or \"gemv\"");
  }
  const std::string name = lower(v.get<std::string>());
  if (name == "gemm") return AwqVersion::kGemm;
  if (name == "gemv") return AwqVersion::kGemv;
  if (name == "exllama" || name == "ipex") {
    // Both are layouts AutoAWQ derives from GEMM weights when loading (exllama: zeros - 1 and
    // row-wise repacking; ipex: Intel's own packing): not what a checkpoint file holds.
    throw Error(QF_CODE_UNIMPLEMENTED, "awq config: version \"" + name + "\" is not supported here",
                "AwqConfig accepts it, but " + name +
                    " is a kernel layout AutoAWQ builds at load time from GEMM weights (on "
                    "ExLlama / Intel IPEX kernels), which this plugin does not implement",
                "set version to \"gemm\" (the checkpoint's stored layout; AutoAWQ's exllama and "
                "ipex loaders read GEMM checkpoints too) or \"gemv\"");
  }
  // AWQLinearVersion.from_str's ValueError.
  invalid("version", "Unknown AWQLinearVersion " + name,
          "transformers' AwqConfig accepts gemm, gemv, exllama and ipex (case-insensitive)",
          "set version to \"gemm\" (the default) or \"gemv\"");
}

}  // namespace

const char* version_name(AwqVersion version) noexcept {
  return version == AwqVersion::kGemv ? "gemv" : "gemm";
}

AwqConfig parse_awq_config(const std::string& config_json) {
  const nlohmann::json j = config_json.empty() ? nlohmann::json::object()
                                               : nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "awq config is not a JSON object",
                "got " + config_json.substr(0, 80), "pass the quantization_config object");
  }
  if (j.contains("quant_method") && j["quant_method"] != kMethodAwq) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "awq config: quant_method is " + j["quant_method"].dump(),
                "this quantizer serves quant_method \"awq\" (AwqConfig)",
                "use the plugin that serves " + j["quant_method"].dump());
  }
  AwqConfig c;
  // AutoAWQ writes w_bit in its own quant_config.json; transformers' block says bits.
  for (const char* key : {"w_bit", "bits"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_number_integer() || j[key] != 4) {
      invalid(key, "only 4-bit AWQ is supported, got " + j[key].dump(),
              "AutoAWQ's WQLinear_GEMM / WQLinear_GEMV raise NotImplementedError(\"Only 4-bit "
              "are supported for now.\"): eight 4-bit codes per int32",
              "set bits to 4, or use gptq / hqq for other bit widths");
    }
  }
  for (const char* key : {"q_group_size", "group_size"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    const auto& v = j[key];
    if (!v.is_number_integer() || (v.get<int64_t>() != -1 && v.get<int64_t>() <= 0)) {
      invalid(key, "must be a positive integer or -1, got " + v.dump(),
              "AWQ groups split in_features into runs of group_size inputs (-1: one group)",
              "use 128 (the default), 64, 32, or -1 for one group per output row");
    }
    c.group_size = v.get<int64_t>();
  }
  c.zero_point = get_bool(j, "zero_point", c.zero_point);
  if (j.contains("version") && !j["version"].is_null()) c.version = parse_version(j["version"]);
  if (j.contains("backend") && !j["backend"].is_null()) {
    if (!j["backend"].is_string()) {
      invalid("backend", "must be a string, got " + j["backend"].dump(),
              "AwqConfig's backend is a name", "write \"autoawq\"");
    }
    c.backend = lower(j["backend"].get<std::string>());
    if (c.backend == "llm-awq") {
      throw Error(QF_CODE_UNIMPLEMENTED, "awq config: backend \"llm-awq\" is not supported here",
                  "llm-awq checkpoints use MIT-Han-Lab's own WQLinear packing, and transformers "
                  "runs them only on CUDA GPUs with compute capability >= 8.0",
                  "use an AutoAWQ checkpoint (backend \"autoawq\")");
    }
    if (c.backend != "autoawq") {
      // transformers' post_init ValueError.
      invalid("backend",
              "Only supported quantization backends in autoawq and llm-awq - not recognized "
              "backend " +
                  c.backend,
              "AwqConfig.post_init accepts autoawq and llm-awq", "set backend to \"autoawq\"");
    }
  }
  const bool fuse = get_bool(j, "do_fuse", false);
  if (fuse || (j.contains("modules_to_fuse") && !j["modules_to_fuse"].is_null())) {
    invalid(fuse ? "do_fuse" : "modules_to_fuse", "awq fuse feature is deprecated",
            "late transformers v4.5x refuse fused AWQ modules; they are a CUDA inference "
            "optimisation that does not change the checkpoint",
            "drop do_fuse / modules_to_fuse from the config");
  }
  if (j.contains("modules_to_not_convert") && !j["modules_to_not_convert"].is_null()) {
    const auto& v = j["modules_to_not_convert"];
    if (!v.is_array()) {
      invalid("modules_to_not_convert", "must be a list of strings, got " + v.dump(),
              "each entry names a module (or a name component) to keep dense",
              "write e.g. [\"lm_head\"]");
    }
    std::vector<std::string> names;
    for (const auto& e : v) {
      if (!e.is_string()) {
        invalid("modules_to_not_convert", "entries must be strings, got " + e.dump(),
                "each entry names a module", "quote them");
      }
      names.push_back(e.get<std::string>());
    }
    c.modules_to_not_convert = names;
  }
  c.data_free = get_bool(j, "data_free", false);
  return c;
}

nlohmann::ordered_json to_quantization_config(const AwqConfig& c) {
  // Key order as AutoAWQ's to_transformers_dict writes it, so files diff cleanly.
  nlohmann::ordered_json o;
  o["quant_method"] = kMethodAwq;
  o["zero_point"] = c.zero_point;
  o["group_size"] = c.group_size;
  o["bits"] = c.bits;
  o["version"] = version_name(c.version);
  o["modules_to_not_convert"] =
      c.modules_to_not_convert ? nlohmann::json(*c.modules_to_not_convert) : nlohmann::json();
  return o;
}

}  // namespace qforge::plugins::awq
