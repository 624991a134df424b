// --config FILE and --set key=value: turning what the user typed into JSON.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "config/strict_json.hpp"
#include "config/yaml_json.hpp"
#include "qforge/config.hpp"
#include "qforge/logging.hpp"

namespace qforge {
namespace {

using nlohmann::json;

// A quantization config is a handful of keys; anything near this size is not one.
constexpr std::uintmax_t kUserConfigMaxBytes = 10u << 20;
constexpr std::size_t kUserConfigMaxDepth = 32;

// JSON gets JSON semantics (nlohmann, strict duplicate check); everything else is YAML. JSON is
// a YAML subset, but YAML readers differ on details such as duplicate keys and "1e3".
bool looks_like_json(const std::string& text) {
  std::size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte order mark
  while (i < text.size() &&
         (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) {
    ++i;
  }
  return i < text.size() && (text[i] == '{' || text[i] == '[');
}

std::string json_type_name(const json& j) {
  return j.is_null() ? "null" : std::string(j.type_name());
}

std::string line_prefix(const std::string& file, const YamlLineMap& lines, const std::string& key) {
  auto it = lines.find(key);
  if (it == lines.end()) return file;
  return file + ":" + std::to_string(it->second);
}

}  // namespace

Result<json> load_user_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    return bad_input("cannot read config file '" + path + "'",
                     "the file does not exist" + (ec ? " (" + ec.message() + ")" : std::string()),
                     "check the path given to --config");
  }
  if (!fs::is_regular_file(st)) {
    return bad_input("cannot read config file '" + path + "'", "it is not a regular file",
                     "pass a YAML or JSON file to --config");
  }
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    return bad_input("cannot read config file '" + path + "'", ec.message(),
                     "check the file's permissions");
  }
  if (size > kUserConfigMaxBytes) {
    return bad_input("config file '" + path + "' is too large",
                     "it has " + std::to_string(size) + " bytes; the limit is " +
                         std::to_string(kUserConfigMaxBytes) + " bytes",
                     "a quantization config is a few keys; pass that file, not a checkpoint");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return bad_input("cannot read config file '" + path + "'", "reading it failed",
                     "check the file's permissions");
  }
  const std::string text = buffer.str();

  YamlLineMap lines;
  const bool is_json = looks_like_json(text);
  Result<json> parsed =
      is_json ? parse_strict_json(text, path, kUserConfigMaxDepth)
              : yaml_to_json(text, path, YamlJsonOptions{kUserConfigMaxDepth}, &lines);
  if (!parsed.ok()) return parsed.error();
  json config = std::move(parsed).value();
  if (config.is_null()) {
    return bad_input("config file '" + path + "' is empty",
                     "it holds no " + std::string(is_json ? "JSON" : "YAML") + " value",
                     "write the quantization config as a mapping, e.g. "
                     "'quant_method: bitsandbytes' and 'load_in_4bit: true'");
  }
  if (!config.is_object()) {
    return bad_input(path + ": the top level is a " + json_type_name(config) + ", not a mapping",
                     "a quantization config is a mapping of keys to values",
                     "write it as 'key: value' lines (YAML) or a {...} object (JSON)");
  }
  auto wrapped = config.find("quantization_config");
  if (wrapped != config.end()) {
    if (!wrapped->is_object()) {
      return bad_input(line_prefix(path, lines, "quantization_config") +
                           ": key 'quantization_config': expected a mapping, got " +
                           json_type_name(*wrapped),
                       "a top-level quantization_config key holds the config itself",
                       "put the config's keys under quantization_config");
    }
    std::vector<std::string> dropped;
    for (const auto& item : config.items()) {
      if (item.key() != "quantization_config") dropped.push_back(item.key());
    }
    if (!dropped.empty()) {
      std::string names;
      for (const auto& d : dropped) names += (names.empty() ? "" : ", ") + d;
      get_logger("host.config")
          ->warn("{}: using only its 'quantization_config'; ignoring the other top-level keys [{}]",
                 path, names);
    }
    json inner = std::move(*wrapped);
    return inner;
  }
  return config;
}

Result<std::pair<std::string, std::string>> parse_set_flag(const std::string& flag) {
  const std::size_t eq = flag.find('=');
  if (eq == std::string::npos) {
    return usage_error("--set '" + flag + "': missing '='",
                       "--set takes key=value (the value is JSON when it parses as JSON, "
                       "else a string)",
                       "write e.g. --set bnb_4bit_quant_type=nf4 or --set llm_int8_threshold=6.0");
  }
  std::string key = flag.substr(0, eq);
  if (key.empty()) {
    return usage_error("--set '" + flag + "': empty key", "nothing stands before '='",
                       "write e.g. --set bnb_4bit_compute_dtype=bfloat16");
  }
  // Dotted keys nest ("a.b=1" -> {"a":{"b":1}}), so an empty segment has no meaning.
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key.find('.', start);
    const std::size_t end = dot == std::string::npos ? key.size() : dot;
    if (end == start) {
      return usage_error("--set '" + flag + "': key '" + key + "' has an empty part",
                         "dotted keys name nested config entries (a.b means key b inside a); "
                         "a leading, trailing or doubled '.' names nothing",
                         "remove the stray '.'");
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return std::make_pair(std::move(key), flag.substr(eq + 1));
}

}  // namespace qforge
