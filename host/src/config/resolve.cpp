// resolve_config: checkpoint quantization_config ⊕ user config, with HF Transformers semantics
// (FORMATS.md §1.5 dispatch, §1.6 merge_quantization_configs). docs/config-resolution.md lists
// the rules and where qforge is deliberately stricter.
//
// Note [quant_method spellings]: ResolvedConfig::quant_method is the canonical dispatch key
// ("bitsandbytes_4bit"), which selects the plugin. ResolvedConfig::config["quant_method"] is what
// a checkpoint's config.json carries: "bitsandbytes" for both bnb methods (FORMATS.md §2.1), the
// canonical name otherwise.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "config/method_index.hpp"
#include "qforge/config.hpp"
#include "qforge/logging.hpp"

namespace qforge {
namespace {

using nlohmann::json;

constexpr const char* kCheckpointOrigin = "the checkpoint's quantization_config (config.json)";
constexpr const char* kUserOrigin = "the user config (--method/--config/--set)";

// FORMATS.md §1.6 step 1, verbatim from transformers.
constexpr const char* kPrequantizedWarning =
    "You passed `quantization_config` or equivalent parameters to `from_pretrained` but the "
    "model you're loading already has a `quantization_config` attribute. The "
    "`quantization_config` from the model will be used.";

// FORMATS.md §2.1: BitsAndBytesConfig's accepted storage dtypes, and the torch floating dtype
// names `getattr(torch, s)` resolves for the compute dtype.
const std::vector<std::string> kBnbQuantStorage = {"bfloat16", "float16", "float32",
                                                   "float64",  "int8",    "uint8"};
const std::vector<std::string> kBnbComputeDtypes = {"bfloat16", "double",  "float", "float16",
                                                    "float32",  "float64", "half"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Pre-flight validation failures: the config is invalid for the run, and the CLI reports it
// with the environment-validation exit code like every other pre-flight check.
Error preflight_error(std::string what, std::string why, std::string fix) {
  return Error(ErrorCode::kInvalidArgument, ExitCode::kEnvironment, std::move(what), std::move(why),
               std::move(fix));
}

Error both_bnb_flags_error(const std::string& origin, const std::string& detail) {
  return preflight_error(
      "load_in_4bit and load_in_8bit are both True, but only one can be used at the same time",
      origin + " " + detail,
      "keep one: load_in_4bit for 4-bit (nf4/fp4) or load_in_8bit for LLM.int8, e.g. "
      "--set load_in_8bit=false, or use the nf4/fp4/int8 presets");
}

Error unknown_method_error(const std::string& name, const MethodIndex& index,
                           const std::string& origin) {
  std::string why = origin + " names quant_method '" + name + "', which no installed plugin " +
                    "serves; installed methods: " + format_name_list(index.methods());
  if (!index.aliases().empty()) why += "; aliases: " + format_name_list(index.aliases());
  return bad_input("unknown quantization method '" + name + "'", why,
                   "use one of the installed methods, or install a plugin that provides '" + name +
                       "' (`qforge plugins` lists them; --plugin-dir adds a folder)");
}

Result<bool> read_flag(const json& config, const char* key, const std::string& origin) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return false;
  if (!it->is_boolean()) {
    return bad_input(origin + ": key '" + key + "' must be true or false",
                     "got " + it->dump() + " (" + it->type_name() + ")",
                     std::string("write ") + key + ": true or " + key + ": false");
  }
  return it->get<bool>();
}

// Whether `config` names a method at all (quant_method or a bnb load flag).
bool names_method(const json& config) {
  auto qm = config.find("quant_method");
  if (qm != config.end() && !qm->is_null()) return true;
  for (const char* key : {"load_in_4bit", "load_in_8bit"}) {
    auto it = config.find(key);
    if (it != config.end() && !it->is_null() && !(it->is_boolean() && !it->get<bool>())) {
      return true;
    }
  }
  return false;
}

// FORMATS.md §1.5: AutoQuantizationConfig.from_dict + AutoHfQuantizer.from_config.
Result<std::string> dispatch_method(const json& config, const MethodIndex& index,
                                    const std::string& origin) {
  Result<bool> in4 = read_flag(config, "load_in_4bit", origin);
  if (!in4.ok()) return in4.error();
  Result<bool> in8 = read_flag(config, "load_in_8bit", origin);
  if (!in8.ok()) return in8.error();
  const bool b4 = in4.value(), b8 = in8.value();

  std::string target;
  auto qm_it = config.find("quant_method");
  if (qm_it != config.end() && !qm_it->is_null()) {
    if (!qm_it->is_string()) {
      return bad_input(origin + ": key 'quant_method' must be a string",
                       "got " + qm_it->dump() + " (" + qm_it->type_name() + ")",
                       "write the method name, e.g. quant_method: gptq");
    }
    const std::string qm = qm_it->get<std::string>();
    if (qm == kBnbFamily) {
      if (b4 && b8) {
        return both_bnb_flags_error(origin, "sets load_in_4bit: true and load_in_8bit: true");
      }
      if (!b4 && !b8) {
        return bad_input(origin +
                             ": quant_method 'bitsandbytes' needs load_in_4bit or "
                             "load_in_8bit set to true",
                         "neither flag is true, and bitsandbytes dispatches to "
                         "bitsandbytes_4bit or bitsandbytes_8bit by these flags",
                         "add load_in_4bit: true (or load_in_8bit: true), or use --method "
                         "nf4/fp4/int8");
      }
      target = b4 ? kBnb4bit : kBnb8bit;
    } else {
      const std::optional<std::string> canonical = index.canonical(qm);
      const std::string name = canonical.value_or(qm);
      if (name == kBnb4bit && b8) {
        return both_bnb_flags_error(
            origin, "names quant_method '" + qm + "' (load_in_4bit) and sets load_in_8bit: true");
      }
      if (name == kBnb8bit && b4) {
        return both_bnb_flags_error(
            origin, "names quant_method '" + qm + "' (load_in_8bit) and sets load_in_4bit: true");
      }
      if (name != kBnb4bit && name != kBnb8bit && (b4 || b8)) {
        // transformers would silently switch to bitsandbytes here; a config naming one method
        // and flagging another is a mistake worth stopping for.
        return bad_input(origin + ": quant_method '" + qm + "' conflicts with " +
                             (b4 ? "load_in_4bit" : "load_in_8bit") + ": true",
                         "load_in_4bit / load_in_8bit select bitsandbytes, but quant_method "
                         "names another method",
                         "remove the load_in_* flag, or write quant_method: bitsandbytes");
      }
      if (!canonical) return unknown_method_error(qm, index, origin);
      target = *canonical;
    }
  } else {
    if (b4 && b8) {
      return both_bnb_flags_error(origin, "sets load_in_4bit: true and load_in_8bit: true");
    }
    if (!b4 && !b8) {
      return bad_input(
          "The model's quantization config from " + origin + " has no quant_method attribute",
          "the config has neither quant_method nor load_in_4bit/load_in_8bit, so no method "
          "can be chosen; keys present: " +
              [&] {
                std::vector<std::string> keys;
                for (const auto& item : config.items()) keys.push_back(item.key());
                return format_name_list(keys);
              }(),
          "add quant_method (e.g. quant_method: gptq) or pass --method");
    }
    target = b4 ? kBnb4bit : kBnb8bit;
  }
  if (index.find(target) == nullptr) return unknown_method_error(target, index, origin);
  return target;
}

// Later wins; nested objects merge key by key.
void deep_merge(json& into, const json& from) {
  for (const auto& item : from.items()) {
    auto it = into.find(item.key());
    if (it != into.end() && it->is_object() && item.value().is_object()) {
      deep_merge(*it, item.value());
    } else {
      into[item.key()] = item.value();
    }
  }
}

// "a.b" + value -> {"a":{"b":value}}; the value is JSON when it parses, else the raw string.
Result<json> override_to_json(const std::string& key, const std::string& raw) {
  Result<std::pair<std::string, std::string>> checked = parse_set_flag(key + "=" + raw);
  if (!checked.ok()) return checked.error();
  json value = json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = raw;
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) value = json{{*it, std::move(value)}};
  return value;
}

struct UserSide {
  bool given = false;
  json config = json::object();
  std::optional<std::string> method_flag;     // --method as typed
  std::optional<std::string> method_expects;  // canonical method --method selects, if definite
};

Result<UserSide> build_user_side(const ConfigRequest& request, const MethodIndex& index) {
  UserSide user;
  if (request.method) {
    user.given = true;
    user.method_flag = *request.method;
    const std::string& name = *request.method;
    std::string owner;
    if (name == kBnbFamily) {
      user.config["quant_method"] = kBnbFamily;  // the flags come from --config/--set
    } else if (std::optional<std::string> canonical = index.canonical(name)) {
      user.config["quant_method"] = *canonical;
      user.method_expects = *canonical;
    } else if (const json* preset = index.preset(name, &owner)) {
      const std::string origin = "preset '" + name + "' of " + owner;
      if (!preset->is_object()) {
        return bad_input(origin + " is not a config object", "got " + preset->dump(),
                         "fix the preset in the plugin's manifest");
      }
      user.config = *preset;
      if (!names_method(user.config)) user.config["quant_method"] = owner;
      Result<std::string> method = dispatch_method(user.config, index, origin);
      if (!method.ok()) return method.error();
      user.method_expects = method.value();
    } else {
      std::string why = "installed methods: " + format_name_list(index.methods());
      if (!index.aliases().empty()) why += "; aliases: " + format_name_list(index.aliases());
      why += "; presets: " + format_name_list(index.presets());
      return bad_input("unknown --method '" + name + "'", why,
                       "pass one of these names, or install a plugin that provides '" + name +
                           "' (`qforge plugins` lists them)");
    }
  }
  if (request.user_config) {
    if (!request.user_config->is_object()) {
      return bad_input("the --config file is not a mapping",
                       "it holds a " + std::string(request.user_config->type_name()),
                       "write the quantization config as key: value pairs");
    }
    user.given = true;
    deep_merge(user.config, *request.user_config);
  }
  for (const auto& [key, raw] : request.overrides) {
    Result<json> nested = override_to_json(key, raw);
    if (!nested.ok()) return nested.error();
    user.given = true;
    deep_merge(user.config, nested.value());
  }
  return user;
}

// FORMATS.md §2.1 type checks that belong to dispatch; the bnb plugin checks the rest.
Status check_bnb_config(json& config, const std::string& origin) {
  auto check_dtype = [&](const char* key, const std::vector<std::string>& allowed) -> Status {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) return ok_status();
    if (!it->is_string() || !contains(allowed, it->get<std::string>())) {
      return preflight_error(
          origin + ": " + key + " " + it->dump() + " is not allowed",
          std::string("allowed values: ") + format_name_list(allowed),
          std::string("set ") + key + " to one of them, e.g. --set " + key + "=bfloat16");
    }
    return ok_status();
  };
  QF_RETURN_IF_ERROR(check_dtype("bnb_4bit_compute_dtype", kBnbComputeDtypes));
  QF_RETURN_IF_ERROR(check_dtype("bnb_4bit_quant_storage", kBnbQuantStorage));
  auto threshold = config.find("llm_int8_threshold");
  if (threshold != config.end() && !threshold->is_null()) {
    if (!threshold->is_number()) {
      return bad_input(origin + ": llm_int8_threshold must be a number",
                       "got " + threshold->dump() + " (" + threshold->type_name() + ")",
                       "write e.g. llm_int8_threshold: 6.0");
    }
    // transformers insists on a Python float; an integer here is only a spelling difference.
    *threshold = threshold->get<double>();
  }
  return ok_status();
}

void warn(ResolvedConfig& out, std::string message) {
  get_logger("host.config")->warn("{}", message);
  out.warnings.push_back(std::move(message));
}

}  // namespace

Result<ResolvedConfig> resolve_config(const ConfigRequest& request,
                                      const std::vector<MethodCatalogEntry>& catalog) {
  const MethodIndex index(catalog);
  ResolvedConfig out;

  std::optional<json> checkpoint;
  if (request.model_config) {
    if (!request.model_config->is_object()) {
      return bad_input("the checkpoint's config.json is not a JSON object",
                       "it holds a " + std::string(request.model_config->type_name()),
                       "check the checkpoint's config.json");
    }
    auto qc = request.model_config->find("quantization_config");
    if (qc != request.model_config->end() && !qc->is_null()) {
      if (!qc->is_object()) {
        return bad_input("config.json: quantization_config is not an object",
                         "it holds " + qc->dump(), "check the checkpoint's config.json");
      }
      checkpoint = *qc;
    }
  }

  Result<UserSide> user_result = build_user_side(request, index);
  if (!user_result.ok()) return user_result.error();
  UserSide& user = user_result.value();

  std::string origin;
  if (checkpoint) {
    origin = kCheckpointOrigin;
    Result<std::string> method = dispatch_method(*checkpoint, index, origin);
    if (!method.ok()) return method.error();
    out.quantize = true;
    out.pre_quantized = true;
    out.quant_method = method.value();
    out.config = *checkpoint;
    if (user.given) {
      warn(out, kPrequantizedWarning);
      const MethodCatalogEntry& entry = *index.find(out.quant_method);
      if (names_method(user.config)) {
        Result<std::string> user_method = dispatch_method(user.config, index, kUserOrigin);
        if (!user_method.ok()) return user_method.error();
        if (user_method.value() != out.quant_method) {
          return bad_input("The model is quantized with " + out.quant_method +
                               " but you are passing a " + user_method.value() + " config",
                           "the checkpoint's config.json quantization_config selects " +
                               out.quant_method + " and " + kUserOrigin + " selects " +
                               user_method.value() +
                               "; a pre-quantized checkpoint loads only with its own method",
                           "drop --method/--config, or pass a " + out.quant_method +
                               " config that changes only its loading attributes " +
                               format_name_list(entry.loading_attributes));
        }
      }
      std::vector<std::string> overwritten, ignored;
      for (const auto& item : user.config.items()) {
        if (item.key() == "quant_method") continue;
        if (contains(entry.loading_attributes, item.key())) {
          out.config[item.key()] = item.value();
          overwritten.push_back(item.key());
        } else {
          ignored.push_back(item.key());
        }
      }
      if (!overwritten.empty()) {
        warn(out, "However, loading attributes (e.g. " + format_name_list(overwritten) +
                      ") will be overwritten with the ones you passed (--config/--set). The "
                      "rest will be ignored.");
      }
      if (!ignored.empty()) {
        const std::string allowed =
            entry.loading_attributes.empty()
                ? out.quant_method + " has no loading attributes a user may override"
                : "only the loading attributes " + format_name_list(entry.loading_attributes) +
                      " may be overridden";
        warn(out, "ignored user config keys " + format_name_list(ignored) +
                      ": the checkpoint is already quantized with " + out.quant_method +
                      " and its quantization_config wins; " + allowed);
      }
    }
  } else if (user.given) {
    origin = kUserOrigin;
    Result<std::string> method = dispatch_method(user.config, index, origin);
    if (!method.ok()) return method.error();
    if (user.method_expects && *user.method_expects != method.value()) {
      return bad_input("--method " + *user.method_flag + " selects " + *user.method_expects +
                           " but --config/--set select " + method.value(),
                       "the merged config's quant_method / load_in_* keys name another method",
                       "drop the conflicting keys from --config/--set, or change --method");
    }
    out.quantize = true;
    out.quant_method = method.value();
    out.config = std::move(user.config);
    // Written as a checkpoint would carry it (Note [quant_method spellings]).
    if (out.quant_method == kBnb4bit || out.quant_method == kBnb8bit) {
      out.config["quant_method"] = kBnbFamily;
      out.config["load_in_4bit"] = out.quant_method == kBnb4bit;
      out.config["load_in_8bit"] = out.quant_method == kBnb8bit;
    } else {
      out.config["quant_method"] = out.quant_method;
    }
  } else {
    out.note =
        "no quantization_config in the checkpoint and no --method/--config given: nothing to "
        "quantize";
    get_logger("host.config")->info("{}", out.note);
    return out;
  }

  const MethodCatalogEntry& entry = *index.find(out.quant_method);
  if (!entry.known_keys.empty()) {
    std::vector<std::string> unused;
    for (const auto& item : out.config.items()) {
      const std::string& key = item.key();
      if (key == "quant_method" || key.rfind('_', 0) == 0) continue;
      if (!contains(entry.known_keys, key)) unused.push_back(key);
    }
    if (!unused.empty()) {
      warn(out, "Unused kwargs: " + format_name_list(unused) + ". These kwargs are not used by " +
                    out.quant_method + " (from " + origin +
                    "; known keys: " + format_name_list(entry.known_keys) + ")");
    }
  }
  if (out.quant_method == kBnb4bit || out.quant_method == kBnb8bit) {
    QF_RETURN_IF_ERROR(check_bnb_config(out.config, origin));
  }
  return out;
}

}  // namespace qforge
