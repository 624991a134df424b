// BitsAndBytesConfig parsing. Each check mirrors BitsAndBytesConfig.__init__/post_init in
// transformers (utils/quantization_config.py); the messages quote transformers' own text so a
// user who searches for it finds the same answers.
#include "bnb_config.hpp"

#include <array>
#include <qforge/qf_plugin.hpp>
#include <utility>

namespace qforge::plugins::bnb {
namespace {

using sdk::Error;

// Storage dtypes BitsAndBytesConfig accepts for bnb_4bit_quant_storage.
constexpr std::array<const char*, 6> kQuantStorageNames = {"float16", "float32", "int8",
                                                           "uint8",   "float64", "bfloat16"};

// Short JSON rendering of a value for messages: what the user actually wrote.
std::string shown(const nlohmann::json& value) {
  std::string text = value.dump();
  constexpr size_t kMaxShown = 60;
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  return text;
}

// The JSON type in words, for "got <type> <value>" messages.
std::string type_word(const nlohmann::json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "boolean";
  if (value.is_number_integer()) return "integer";
  if (value.is_number_float()) return "float";
  if (value.is_string()) return "string";
  if (value.is_array()) return "list";
  return "object";
}

Error config_error(const std::string& what, const std::string& why, const std::string& fix) {
  return Error(QF_CODE_INVALID_ARGUMENT, "bitsandbytes config: " + what, why, fix);
}

// A bool field: transformers raises TypeError("<key> must be a boolean") for anything else,
// including 0/1 and null.
void read_bool(const nlohmann::json& config, const char* key, bool* out) {
  auto it = config.find(key);
  if (it == config.end()) return;
  if (!it->is_boolean()) {
    throw config_error(
        std::string(key) + " must be a boolean",
        "got " + type_word(*it) + " " + shown(*it) + " (transformers raises TypeError here)",
        std::string("write ") + key + ": true or " + key + ": false");
  }
  *out = it->get<bool>();
}

void read_threshold(const nlohmann::json& config, BnbConfig* out) {
  auto it = config.find("llm_int8_threshold");
  if (it == config.end()) return;
  if (!it->is_number_float()) {
    // Python's isinstance(6, float) is False, so an integer is a TypeError, not a conversion.
    std::string fix = "write a float, e.g. llm_int8_threshold: 6.0";
    if (it->is_number_integer()) {
      fix = "write llm_int8_threshold: " + it->dump() + ".0 (a float, not an integer)";
    }
    throw config_error(
        "llm_int8_threshold must be a float",
        "got " + type_word(*it) + " " + shown(*it) + " (transformers raises TypeError here)", fix);
  }
  out->llm_int8_threshold = it->get<double>();
}

void read_skip_modules(const nlohmann::json& config, BnbConfig* out) {
  auto it = config.find("llm_int8_skip_modules");
  if (it == config.end() || it->is_null()) return;
  const std::string fix =
      "write a list of module names, e.g. llm_int8_skip_modules: [\"lm_head\"], or null for the "
      "model's default skips";
  if (!it->is_array()) {
    throw config_error("llm_int8_skip_modules must be a list of strings",
                       "got " + type_word(*it) + " " + shown(*it), fix);
  }
  std::vector<std::string> names;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& item = (*it)[i];
    if (!item.is_string()) {
      throw config_error(
          "llm_int8_skip_modules must be a list of strings",
          "element " + std::to_string(i) + " is " + type_word(item) + " " + shown(item), fix);
    }
    names.push_back(item.get<std::string>());
  }
  out->llm_int8_skip_modules = std::move(names);
}

void read_compute_dtype(const nlohmann::json& config, BnbConfig* out) {
  auto it = config.find("bnb_4bit_compute_dtype");
  if (it == config.end() || it->is_null()) return;  // None -> torch.float32
  const std::string fix = "use a torch dtype name: bfloat16, float16 or float32";
  if (!it->is_string()) {
    throw config_error("bnb_4bit_compute_dtype must be a string or a torch.dtype",
                       "got " + type_word(*it) + " " + shown(*it), fix);
  }
  auto canonical = canonical_torch_dtype(it->get<std::string>());
  if (!canonical) {
    throw config_error("bnb_4bit_compute_dtype must be torch.dtype",
                       "'" + it->get<std::string>() + "' is not a dtype of torch", fix);
  }
  out->bnb_4bit_compute_dtype = *canonical;
}

void read_quant_type(const nlohmann::json& config, BnbConfig* out) {
  auto it = config.find("bnb_4bit_quant_type");
  if (it == config.end()) return;
  const std::string fix = "write bnb_4bit_quant_type: nf4 or bnb_4bit_quant_type: fp4";
  if (!it->is_string()) {
    throw config_error(
        "bnb_4bit_quant_type must be a string",
        "got " + type_word(*it) + " " + shown(*it) + " (transformers raises TypeError here)", fix);
  }
  const std::string value = it->get<std::string>();
  if (value != "fp4" && value != "nf4") {
    throw config_error("bnb_4bit_quant_type must be 'fp4' or 'nf4'",
                       "got '" + value + "'; bitsandbytes has no other 4-bit data type", fix);
  }
  out->bnb_4bit_quant_type = value;
}

void read_quant_storage(const nlohmann::json& config, BnbConfig* out) {
  auto it = config.find("bnb_4bit_quant_storage");
  if (it == config.end() || it->is_null()) return;  // None -> torch.uint8
  const std::string fix =
      "use one of float16, float32, int8, uint8, float64, bfloat16 (uint8 unless an FSDP setup "
      "needs the model dtype)";
  if (!it->is_string()) {
    throw config_error("bnb_4bit_quant_storage must be a string or a torch.dtype",
                       "got " + type_word(*it) + " " + shown(*it), fix);
  }
  const std::string value = it->get<std::string>();
  for (const char* name : kQuantStorageNames) {
    if (value == name) {
      out->bnb_4bit_quant_storage = value;
      return;
    }
  }
  throw config_error(
      "`bnb_4bit_quant_storage` must be a valid string (one of 'float16', 'float32', 'int8', "
      "'uint8', 'float64', 'bfloat16')",
      "got '" + value + "'", fix);
}

// quant_method may be transformers' "bitsandbytes", either canonical method name or one of the
// manifest aliases; naming the other method is a conflict, anything else a typo.
void check_quant_method(const nlohmann::json& config, BnbBits bits) {
  auto it = config.find("quant_method");
  if (it == config.end() || it->is_null()) return;
  const std::string mine = method_name(bits);
  if (!it->is_string()) {
    throw config_error("quant_method must be a string", "got " + type_word(*it) + " " + shown(*it),
                       "write quant_method: bitsandbytes or quant_method: " + mine);
  }
  const std::string value = it->get<std::string>();
  const bool four = bits == BnbBits::k4;
  const bool accepted = value == kHfQuantMethod || value == mine ||
                        (four ? value == "bnb_4bit" : (value == "bnb_8bit" || value == "llm_int8"));
  if (accepted) return;
  const std::string other = method_name(four ? BnbBits::k8 : BnbBits::k4);
  if (value == other) {
    throw config_error("quant_method '" + value + "' cannot configure " + mine,
                       "the config names the other bitsandbytes method",
                       "select --method " + other + ", or write quant_method: bitsandbytes with " +
                           (four ? "load_in_4bit" : "load_in_8bit") + ": true");
  }
  throw config_error(
      "quant_method '" + value + "' cannot configure " + mine,
      "this method serves quant_method 'bitsandbytes' (transformers' spelling) or '" + mine + "'",
      "write quant_method: bitsandbytes (or " + mine + ")");
}

}  // namespace

const char* method_name(BnbBits bits) noexcept {
  return bits == BnbBits::k4 ? kMethod4Bit : kMethod8Bit;
}

std::optional<std::string> canonical_torch_dtype(const std::string& name) {
  // getattr(torch, name) for every dtype (and alias) torch exposes; "torch." is tolerated
  // because YAML users copy it from Python code.
  static const std::array<std::pair<const char*, const char*>, 27> kNames = {{
      {"float16", "float16"},
      {"half", "float16"},
      {"bfloat16", "bfloat16"},
      {"float32", "float32"},
      {"float", "float32"},
      {"float64", "float64"},
      {"double", "float64"},
      {"uint8", "uint8"},
      {"int8", "int8"},
      {"int16", "int16"},
      {"short", "int16"},
      {"int32", "int32"},
      {"int", "int32"},
      {"int64", "int64"},
      {"long", "int64"},
      {"uint16", "uint16"},
      {"uint32", "uint32"},
      {"uint64", "uint64"},
      {"bool", "bool"},
      {"complex32", "complex32"},
      {"chalf", "complex32"},
      {"complex64", "complex64"},
      {"cfloat", "complex64"},
      {"complex128", "complex128"},
      {"cdouble", "complex128"},
      {"float8_e4m3fn", "float8_e4m3fn"},
      {"float8_e5m2", "float8_e5m2"},
  }};
  std::string key = name;
  const std::string prefix = "torch.";
  if (key.compare(0, prefix.size(), prefix) == 0) key = key.substr(prefix.size());
  for (const auto& [alias, canonical] : kNames) {
    if (key == alias) return std::string(canonical);
  }
  return std::nullopt;
}

BnbConfig parse_bnb_config(const std::string& config_json, BnbBits bits) {
  const nlohmann::json config = nlohmann::json::parse(config_json, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    throw config_error(
        "quantization_config is not a JSON object",
        "got " + std::string(config.is_discarded() ? "text that is not JSON" : type_word(config)),
        "pass an object such as {\"quant_method\": \"bitsandbytes\", "
        "\"load_in_4bit\": true}");
  }
  check_quant_method(config, bits);

  BnbConfig out;
  read_bool(config, "load_in_8bit", &out.load_in_8bit);
  read_bool(config, "load_in_4bit", &out.load_in_4bit);
  // Written by to_dict(); transformers ignores them on the way back in ("Unused kwargs"), but
  // a malformed value still deserves a clear error rather than silence.
  bool ignored = false;
  read_bool(config, "_load_in_8bit", &ignored);
  read_bool(config, "_load_in_4bit", &ignored);
  read_threshold(config, &out);
  read_skip_modules(config, &out);
  read_bool(config, "llm_int8_enable_fp32_cpu_offload", &out.llm_int8_enable_fp32_cpu_offload);
  read_bool(config, "llm_int8_has_fp16_weight", &out.llm_int8_has_fp16_weight);
  read_compute_dtype(config, &out);
  read_quant_type(config, &out);
  read_bool(config, "bnb_4bit_use_double_quant", &out.bnb_4bit_use_double_quant);
  read_quant_storage(config, &out);

  if (out.load_in_4bit && out.load_in_8bit) {
    throw config_error(
        "load_in_4bit and load_in_8bit are both True, but only one can be used at the same time",
        "the config sets load_in_4bit: true and load_in_8bit: true",
        "keep load_in_4bit: true for bitsandbytes_4bit or load_in_8bit: true for "
        "bitsandbytes_8bit, and set the other to false");
  }
  const bool four = bits == BnbBits::k4;
  if ((four && out.load_in_8bit) || (!four && out.load_in_4bit)) {
    throw config_error(std::string("the config selects ") + (four ? "8-bit" : "4-bit") +
                           " but method " + method_name(bits) + " was chosen",
                       std::string("load_in_") + (four ? "8" : "4") + "bit is true",
                       std::string("use --method ") +
                           method_name(four ? BnbBits::k8 : BnbBits::k4) + ", or set load_in_" +
                           (four ? "4" : "8") + "bit: true and load_in_" + (four ? "8" : "4") +
                           "bit: false");
  }
  if (four) {
    out.load_in_4bit = true;
  } else {
    out.load_in_8bit = true;
  }
  return out;
}

nlohmann::json to_quantization_config(const BnbConfig& config) {
  // nlohmann::json objects keep keys sorted, which is also the order to_json_file writes
  // (sort_keys=True).
  nlohmann::json j = nlohmann::json::object();
  j["_load_in_4bit"] = config.load_in_4bit;
  j["_load_in_8bit"] = config.load_in_8bit;
  j["bnb_4bit_compute_dtype"] = config.bnb_4bit_compute_dtype;
  j["bnb_4bit_quant_storage"] = config.bnb_4bit_quant_storage;
  j["bnb_4bit_quant_type"] = config.bnb_4bit_quant_type;
  j["bnb_4bit_use_double_quant"] = config.bnb_4bit_use_double_quant;
  j["llm_int8_enable_fp32_cpu_offload"] = config.llm_int8_enable_fp32_cpu_offload;
  j["llm_int8_has_fp16_weight"] = config.llm_int8_has_fp16_weight;
  j["llm_int8_skip_modules"] = config.llm_int8_skip_modules
                                   ? nlohmann::json(*config.llm_int8_skip_modules)
                                   : nlohmann::json(nullptr);
  j["llm_int8_threshold"] = config.llm_int8_threshold;
  j["load_in_4bit"] = config.load_in_4bit;
  j["load_in_8bit"] = config.load_in_8bit;
  j["quant_method"] = kHfQuantMethod;
  return j;
}

}  // namespace qforge::plugins::bnb
