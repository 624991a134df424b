// GPTQConfig parsing (see gptq_config.hpp).
#include "gptq_config.hpp"

#include <algorithm>
#include <cctype>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::gptq {
namespace {

using sdk::Error;

[[noreturn]] void invalid(const std::string& key, const std::string& message,
                          const std::string& fix) {
  throw Error(QF_CODE_INVALID_ARGUMENT, "gptq config: " + key + ": " + message,
              "transformers' GPTQConfig.post_init raises ValueError: " + message, fix);
}

bool get_bool(const nlohmann::json& j, const char* key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) {
    invalid(key, std::string("must be true or false, got ") + j[key].dump(),
            std::string("write \"") + key + "\": true or false");
  }
  return j[key].get<bool>();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

std::vector<std::string> strings(const nlohmann::json& v, const std::string& key) {
  if (!v.is_array()) {
    invalid(key, "must be a list of strings, got " + v.dump(), "write e.g. [\"q_proj\"]");
  }
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) invalid(key, "entries must be strings, got " + e.dump(), "quote them");
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::optional<std::string> optional_string(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_string()) {
    invalid(key, std::string("must be a string or null, got ") + j[key].dump(),
            "write the module path as a string, e.g. \"model.layers\"");
  }
  return j[key].get<std::string>();
}

}  // namespace

int64_t GptqConfig::groups(int64_t in_features) const noexcept {
  const int64_t g = effective_group_size(in_features);
  return g > 0 ? (in_features + g - 1) / g : 0;
}

int64_t GptqConfig::effective_group_size(int64_t in_features) const noexcept {
  return group_size == -1 ? in_features : group_size;
}

GptqConfig parse_gptq_config(const std::string& config_json) {
  const nlohmann::json j = config_json.empty() ? nlohmann::json::object()
                                               : nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "gptq config is not a JSON object",
                "got " + config_json.substr(0, 80), "pass the quantization_config object");
  }
  if (j.contains("quant_method") && j["quant_method"] != kMethodGptq) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "gptq config: quant_method is " + j["quant_method"].dump(),
                "this quantizer serves quant_method \"gptq\" (GPTQConfig)",
                "use the plugin that serves " + j["quant_method"].dump());
  }
  GptqConfig c;
  if (!j.contains("bits") || j["bits"].is_null()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "gptq config: bits is missing",
                "GPTQConfig(bits) has no default: the bit width must be chosen",
                "set bits to 2, 3, 4 or 8 (e.g. --set bits=4)");
  }
  if (!j["bits"].is_number_integer() ||
      (j["bits"] != 2 && j["bits"] != 3 && j["bits"] != 4 && j["bits"] != 8)) {
    invalid("bits", "Only support quantization to [2,3,4,8] bits but found " + j["bits"].dump(),
            "set bits to 2, 3, 4 or 8");
  }
  c.bits = j["bits"].get<int>();
  if (j.contains("group_size") && !j["group_size"].is_null()) {
    const auto& v = j["group_size"];
    if (!v.is_number_integer() || (v.get<int64_t>() != -1 && v.get<int64_t>() <= 0)) {
      invalid("group_size", "group_size must be greater than 0 or equal to -1",
              "use 128 (the default), another positive size, or -1 for one group per column");
    }
    c.group_size = v.get<int64_t>();
  }
  if (j.contains("damp_percent") && !j["damp_percent"].is_null()) {
    const auto& v = j["damp_percent"];
    if (!v.is_number() || !(v.get<double>() > 0.0 && v.get<double>() < 1.0)) {
      invalid("damp_percent", "damp_percent must between 0 and 1.",
              "use a fraction strictly between 0 and 1, e.g. 0.1 (transformers) or 0.01 "
              "(AutoGPTQ)");
    }
    c.damp_percent = v.get<double>();
  }
  c.desc_act = get_bool(j, "desc_act", c.desc_act);
  c.act_group_aware = get_bool(j, "act_group_aware", c.act_group_aware);
  if (c.desc_act && c.act_group_aware) {
    c.act_group_aware = false;  // transformers disables it (with a warning) under desc_act
    if (sdk::log_enabled(QF_LOG_WARN)) {
      sdk::log(QF_LOG_WARN,
               "`act_group_aware` has been auto-disabled as it is not compatible with "
               "`desc_act = True`.");
    }
  }
  c.sym = get_bool(j, "sym", c.sym);
  c.true_sequential = get_bool(j, "true_sequential", c.true_sequential);
  c.static_groups = get_bool(j, "static_groups", c.static_groups);
  c.cache_block_outputs = get_bool(j, "cache_block_outputs", c.cache_block_outputs);
  // v5 calls the field `format` and writes both; checkpoint_format wins when both are present.
  for (const char* key : {"format", "checkpoint_format"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_string()) {
      invalid(key, std::string("must be a string, got ") + j[key].dump(),
              "write \"gptq\" (v1) or \"gptq_v2\"");
    }
    const std::string f = lower(j[key].get<std::string>());
    if (f != "gptq" && f != "gptq_v2") {
      // transformers only lower-cases it; GPTQModel's loader is what refuses other formats.
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  std::string("gptq config: ") + key + ": unknown checkpoint format \"" + f + "\"",
                  "GPTQ checkpoints come as \"gptq\" (v1, qzeros store zero - 1; AutoGPTQ, "
                  "optimum) or \"gptq_v2\" (GPTQModel, qzeros store zero); other formats "
                  "(marlin, bitblas, ...) are kernel repackings this plugin does not read",
                  "set checkpoint_format to \"gptq\" or \"gptq_v2\" as the checkpoint was "
                  "written, or convert it with GPTQModel first");
    }
    c.checkpoint_format = f;
  }
  if (j.contains("dataset") && !j["dataset"].is_null()) {
    const auto& v = j["dataset"];
    if (v.is_string()) {
      const std::string d = v.get<std::string>();
      if (d != "wikitext2" && d != "c4" && d != "c4-new") {
        invalid("dataset",
                "You have entered a string value for dataset. You can only choose between "
                "['wikitext2','c4','c4-new'], but we found " +
                    d,
                "use one of those names or a list of calibration texts");
      }
    } else if (v.is_array()) {
      strings(v, "dataset");
    } else {
      invalid("dataset",
              "dataset needs to be either a list of string or a value in "
              "['wikitext2','c4','c4-new'], but we found " +
                  v.dump(),
              "use one of those names or a list of calibration texts");
    }
    c.dataset = v;
  }
  if (j.contains("tokenizer")) c.tokenizer = j["tokenizer"];
  if (j.contains("meta")) c.meta = j["meta"];
  if (j.contains("backend") && !j["backend"].is_null()) {
    if (!j["backend"].is_string()) {
      invalid("backend", "must be a string, got " + j["backend"].dump(), "e.g. \"auto\"");
    }
    c.backend = lower(j["backend"].get<std::string>());
  }
  if (j.contains("model_seqlen") && !j["model_seqlen"].is_null()) {
    if (!j["model_seqlen"].is_number_integer() || j["model_seqlen"].get<int64_t>() <= 0) {
      invalid("model_seqlen", "must be a positive integer, got " + j["model_seqlen"].dump(),
              "set the calibration sequence length, e.g. 2048");
    }
    c.model_seqlen = j["model_seqlen"].get<int64_t>();
  }
  c.block_name_to_quantize = optional_string(j, "block_name_to_quantize");
  c.module_name_preceding_first_block = optional_string(j, "module_name_preceding_first_block");
  if (j.contains("batch_size") && !j["batch_size"].is_null()) {
    if (!j["batch_size"].is_number_integer() || j["batch_size"].get<int64_t>() <= 0) {
      invalid("batch_size", "must be a positive integer, got " + j["batch_size"].dump(),
              "use 1 (the default)");
    }
    c.batch_size = j["batch_size"].get<int64_t>();
  }
  if (j.contains("pad_token_id")) c.pad_token_id = j["pad_token_id"];
  if (j.contains("max_input_length")) c.max_input_length = j["max_input_length"];
  if (j.contains("modules_in_block_to_quantize") && !j["modules_in_block_to_quantize"].is_null()) {
    const auto& v = j["modules_in_block_to_quantize"];
    if (!v.is_array()) {
      invalid("modules_in_block_to_quantize",
              "must be a list of lists of module names, got " + v.dump(),
              R"(write e.g. [["self_attn.q_proj", "self_attn.k_proj"], ["mlp.up_proj"]])");
    }
    std::vector<std::vector<std::string>> steps;
    for (const auto& step : v) {
      if (!step.is_array()) {
        invalid("modules_in_block_to_quantize",
                "each entry must be a list of module names, got " + step.dump(),
                R"(wrap single names in a list: [["self_attn.q_proj"]])");
      }
      steps.push_back(strings(step, "modules_in_block_to_quantize"));
    }
    c.modules_in_block_to_quantize = steps;
  }
  if (j.contains("modules_to_not_convert") && !j["modules_to_not_convert"].is_null()) {
    c.modules_to_not_convert = strings(j["modules_to_not_convert"], "modules_to_not_convert");
  }
  return c;
}

nlohmann::ordered_json to_quantization_config(const GptqConfig& c) {
  // Key order as GPTQConfig.to_dict() (its __dict__) writes it, so files diff cleanly.
  nlohmann::ordered_json o;
  o["quant_method"] = kMethodGptq;
  o["bits"] = c.bits;
  o["tokenizer"] = c.tokenizer;
  o["dataset"] = c.dataset;
  o["group_size"] = c.group_size;
  o["damp_percent"] = c.damp_percent;
  o["desc_act"] = c.desc_act;
  o["act_group_aware"] = c.act_group_aware;
  o["sym"] = c.sym;
  o["true_sequential"] = c.true_sequential;
  o["format"] = c.checkpoint_format;
  o["meta"] = c.meta;
  o["backend"] = c.backend;
  o["model_seqlen"] = c.model_seqlen ? nlohmann::json(*c.model_seqlen) : nlohmann::json(nullptr);
  o["block_name_to_quantize"] = c.block_name_to_quantize ? nlohmann::json(*c.block_name_to_quantize)
                                                         : nlohmann::json(nullptr);
  o["module_name_preceding_first_block"] =
      c.module_name_preceding_first_block ? nlohmann::json(*c.module_name_preceding_first_block)
                                          : nlohmann::json(nullptr);
  o["batch_size"] = c.batch_size;
  o["pad_token_id"] = c.pad_token_id;
  o["max_input_length"] = c.max_input_length;
  o["cache_block_outputs"] = c.cache_block_outputs;
  o["modules_in_block_to_quantize"] = c.modules_in_block_to_quantize
                                          ? nlohmann::json(*c.modules_in_block_to_quantize)
                                          : nlohmann::json(nullptr);
  o["checkpoint_format"] = c.checkpoint_format;
  // Not GPTQConfig fields: written only when set, as AutoGPTQ's quantize_config.json has them.
  if (c.static_groups) o["static_groups"] = true;
  if (c.modules_to_not_convert) o["modules_to_not_convert"] = *c.modules_to_not_convert;
  return o;
}

}  // namespace qforge::plugins::gptq
