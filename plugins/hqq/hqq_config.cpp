// HqqConfig parsing and per-module resolution (see hqq_config.hpp).
#include "hqq_config.hpp"

#include <cctype>
#include <cmath>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::hqq {
namespace {

using sdk::Error;

[[noreturn]] void invalid(const std::string& where, const std::string& message,
                          const std::string& source, const std::string& fix) {
  throw Error(QF_CODE_INVALID_ARGUMENT, "hqq config: " + where + ": " + message,
              source + " raises: " + message, fix);
}

constexpr double kSupportedBits[] = {8, 6, 5, 4, 3, 2, 1.58, 1};

bool supported_bits(double nbits) {
  for (double b : kSupportedBits) {
    if (nbits == b) return true;
  }
  return false;
}

bool get_bool(const nlohmann::json& v, const std::string& where) {
  if (!v.is_boolean()) {
    invalid(where, "must be true or false, got " + v.dump(), "hqq", "write true or false");
  }
  return v.get<bool>();
}

int64_t get_int(const nlohmann::json& v, const std::string& where) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
    return static_cast<int64_t>(v.get<double>());
  }
  invalid(where, "must be an integer, got " + v.dump(), "hqq", "write an integer");
}

void check_axis(int64_t axis, const std::string& where) {
  if (axis != 0 && axis != 1) {
    invalid(where, "Invalid axis value. Only 0 and 1 are allowed.",
            "transformers' HqqConfig (ValueError)",
            "use axis 1 (groups along the input dimension, the default) or 0");
  }
}

// The weight_quant_params fields shared by the constructor and the serialized form.
void read_common(const nlohmann::json& j, WeightQuantParams& p, const std::string& where) {
  if (j.contains("nbits")) {
    const auto& v = j["nbits"];
    if (!v.is_number())
      invalid(where + ".nbits", "must be a number, got " + v.dump(), "hqq",
              "use one of 8, 6, 5, 4, 3, 2, 1.58, 1");
    p.nbits = v.get<double>();
  }
  if (!supported_bits(p.nbits)) {
    invalid(where + ".nbits", "nbits value not supported. Check Quantizer.SUPPORTED_BITS.",
            "hqq's hqq_base_quant_config (AssertionError)",
            "use one of 8, 6, 5, 4, 3, 2, 1.58, 1 (Quantizer.SUPPORTED_BITS)");
  }
  if (j.contains("group_size")) {
    const auto& v = j["group_size"];
    p.group_size =
        v.is_null() ? std::nullopt : std::optional<int64_t>(get_int(v, where + ".group_size"));
  }
  if (p.group_size) {
    if (*p.group_size <= 0 || *p.group_size % 8 != 0) {
      invalid(where + ".group_size",
              "Invalid group_size param: the value should be a multiple of 8.",
              "hqq's hqq_base_quant_config (AssertionError)",
              "use a positive multiple of 8 that divides the weights (64 is the default), or "
              "null for one group per row");
    }
  }
  if (j.contains("axis")) {
    const int64_t axis = get_int(j["axis"], where + ".axis");
    check_axis(axis, where + ".axis");
    p.axis = static_cast<int>(axis);
  }
  if (j.contains("view_as_float")) p.view_as_float = get_bool(j["view_as_float"], where);
}

// One serialized quant_config ({"weight_quant_params": {...}, ...}).
WeightQuantParams read_serialized(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("weight_quant_params") ||
      !j["weight_quant_params"].is_object()) {
    invalid(where, "has no weight_quant_params object, got " + j.dump().substr(0, 120),
            "hqq's HQQLinear",
            "write the quant_config as transformers does: {\"weight_quant_params\": {...}, "
            "\"scale_quant_params\": null, \"zero_quant_params\": null, \"offload_meta\": false}");
  }
  const auto& w = j["weight_quant_params"];
  WeightQuantParams p;
  p.round_zero = false;  // a serialized config says what it used
  read_common(w, p, where + ".weight_quant_params");
  if (w.contains("channel_wise")) p.channel_wise = get_bool(w["channel_wise"], where);
  if (w.contains("optimize")) p.optimize = get_bool(w["optimize"], where);
  if (w.contains("round_zero")) p.round_zero = get_bool(w["round_zero"], where);
  return p;
}

}  // namespace

int max_code(double nbits) { return static_cast<int>(std::lround(std::exp2(nbits) - 1.0)); }

std::string packing_for(double nbits) {
  if (nbits >= 5) return "8bit_u8";
  if (nbits == 4) return "4bit_u8";
  if (nbits == 3) return "3bit_32";
  if (nbits >= 1.5) return "2bit_u8";
  return "1bit_u8";
}

WeightQuantParams base_quant_config(const nlohmann::json& args, const std::string& where) {
  if (!args.is_object()) {
    invalid(where, "must be an object of hqq_base_quant_config arguments, got " + args.dump(),
            "hqq", R"(write e.g. {"nbits": 4, "group_size": 64})");
  }
  static const char* const kKnown[] = {"nbits",        "group_size",    "quant_zero", "quant_scale",
                                       "offload_meta", "view_as_float", "axis"};
  for (const auto& [key, value] : args.items()) {
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known) {
      invalid(where, "hqq_base_quant_config() got an unexpected keyword argument '" + key + "'",
              "Python (TypeError)",
              "use nbits, group_size, axis, view_as_float (quant_zero, quant_scale, "
              "offload_meta are deprecated)");
    }
  }
  WeightQuantParams p;
  read_common(args, p, where);
  p.round_zero = p.nbits == 4;
  return p;
}

nlohmann::json base_quant_config_json(const WeightQuantParams& p) {
  nlohmann::json w;
  // An integral nbits is written as an integer, as Python's json writes 4 (1.58 stays a float).
  if (std::floor(p.nbits) == p.nbits) {
    w["nbits"] = static_cast<int64_t>(p.nbits);
  } else {
    w["nbits"] = p.nbits;
  }
  w["channel_wise"] = p.channel_wise;
  w["group_size"] = p.group_size ? nlohmann::json(*p.group_size) : nlohmann::json(nullptr);
  w["optimize"] = p.optimize;
  w["round_zero"] = p.round_zero;
  w["axis"] = p.axis;
  w["view_as_float"] = p.view_as_float;
  return {{"weight_quant_params", w},
          {"scale_quant_params", nullptr},
          {"zero_quant_params", nullptr},
          {"offload_meta", false}};
}

HqqConfig parse_hqq_config(const std::string& config_json) {
  const nlohmann::json j = config_json.empty() ? nlohmann::json::object()
                                               : nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "hqq config is not a JSON object",
                "got " + config_json.substr(0, 80), "pass the quantization_config object");
  }
  if (j.contains("quant_method") && j["quant_method"] != kMethodHqq) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "hqq config: quant_method is " + j["quant_method"].dump(),
                "this quantizer serves quant_method \"hqq\" (HqqConfig)",
                "use the plugin that serves " + j["quant_method"].dump());
  }
  HqqConfig c;
  if (j.contains("skip_modules")) {
    const auto& v = j["skip_modules"];
    if (!v.is_array()) {
      invalid("skip_modules", "must be a list of linear tags, got " + v.dump(), "HqqConfig",
              R"(write e.g. "skip_modules": ["lm_head"])");
    }
    c.skip_modules.clear();
    for (const auto& e : v) {
      if (!e.is_string()) {
        invalid("skip_modules", "entries must be strings, got " + e.dump(), "HqqConfig",
                "list linear tags as strings");
      }
      c.skip_modules.push_back(e.get<std::string>());
    }
  }
  if (j.contains("quant_config")) {
    // Serialized form (HqqConfig.from_dict): quant_config is one base config or tag -> config.
    const auto& qc = j["quant_config"];
    if (!qc.is_object()) {
      invalid("quant_config", "must be an object, got " + qc.dump().substr(0, 80), "HqqConfig",
              "write the block transformers saves in config.json");
    }
    if (qc.contains("weight_quant_params")) {
      c.all = read_serialized(qc, "quant_config");
    } else {
      for (const auto& [tag, sub] : qc.items()) {
        c.per_tag[tag] = read_serialized(sub, "quant_config." + tag);
      }
    }
    c.quant_config_json = qc;
    return c;
  }
  // Constructor form: HqqConfig(nbits, group_size, view_as_float, axis, dynamic_config, ...).
  nlohmann::json args = nlohmann::json::object();
  for (const char* key : {"nbits", "group_size", "view_as_float"}) {
    if (j.contains(key)) args[key] = j[key];
  }
  // axis None -> 1 (transformers logs that faster backends need 1); checked even when
  // dynamic_config makes it unused, as HqqConfig does.
  args["axis"] = 1;
  if (j.contains("axis") && !j["axis"].is_null()) {
    const int64_t axis = get_int(j["axis"], "axis");
    check_axis(axis, "axis");
    args["axis"] = axis;
  }
  if (j.contains("dynamic_config") && !j["dynamic_config"].is_null()) {
    const auto& dyn = j["dynamic_config"];
    if (!dyn.is_object()) {
      invalid("dynamic_config", "must map linear tags to configs, got " + dyn.dump(), "HqqConfig",
              R"(write e.g. {"self_attn.q_proj": {"nbits": 4, "group_size": 64}})");
    }
    c.quant_config_json = nlohmann::json::object();
    for (const auto& [tag, sub] : dyn.items()) {
      c.per_tag[tag] = base_quant_config(sub, "dynamic_config." + tag);
      c.quant_config_json[tag] = base_quant_config_json(c.per_tag[tag]);
    }
  } else {
    c.all = base_quant_config(args, "config");
    c.quant_config_json = base_quant_config_json(*c.all);
  }
  return c;
}

std::string linear_tag(const std::string& module_name) {
  std::string out;
  size_t begin = 0;
  while (begin <= module_name.size()) {
    size_t end = module_name.find('.', begin);
    if (end == std::string::npos) end = module_name.size();
    const std::string part = module_name.substr(begin, end - begin);
    bool numeric = !part.empty();
    for (char ch : part) numeric = numeric && std::isdigit(static_cast<unsigned char>(ch)) != 0;
    if (part != "model" && part != "layers" && !numeric) out += (out.empty() ? "" : ".") + part;
    begin = end + 1;
  }
  return out;
}

std::optional<WeightQuantParams> params_for(const HqqConfig& config, const std::string& name,
                                            std::string& reason) {
  const std::string tag = linear_tag(name);
  for (const auto& skip : config.skip_modules) {
    if (skip == tag) {
      reason = "linear tag '" + tag + "' is in skip_modules";
      return std::nullopt;
    }
  }
  if (config.all) return config.all;
  auto it = config.per_tag.find(tag);
  if (it == config.per_tag.end()) {
    reason = "linear tag '" + tag + "' has no entry in the per-tag quant_config (dynamic_config)";
    return std::nullopt;
  }
  return it->second;
}

nlohmann::json to_quantization_config(const HqqConfig& config) {
  return {{"quant_config", config.quant_config_json},
          {"quant_method", kMethodHqq},
          {"skip_modules", config.skip_modules}};
}

}  // namespace qforge::plugins::hqq
