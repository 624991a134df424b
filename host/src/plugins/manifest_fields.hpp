// Typed field readers for manifest validation: each reads one YAML node against the schema and,
// on failure, returns an error naming the file, the field path, what was found, what was expected
// and what to write instead. Private to host/src/plugins (used by manifest.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/manifest_yaml.hpp"
#include "qforge/error.hpp"

namespace qforge::plugins {

inline constexpr std::size_t kManifestMaxNameLength = 64;   // ids, methods, aliases, presets
inline constexpr std::size_t kManifestMaxLineLength = 256;  // name, version, list entries...
inline constexpr const char* kManifestSchemaDoc = "see docs/manifest.md";

// What every check needs to word its error.
struct ManifestCtx {
  std::string source;  // the file name shown first in every message
};

std::string join_path(const std::string& parent, const std::string& key);
std::string index_path(const std::string& parent, std::size_t i);
// A key as it may appear in a field path: control bytes escaped, long keys cut.
std::string escape_key(const std::string& key);
// How a node reads in "got ..." phrases: 'high', the quoted string '5', a list, nothing (null).
std::string describe(const YamlNode& node);

// "<source>: field '<path>': <problem>", why prefixed with the node's line and column.
Error field_error(const ManifestCtx& ctx, const std::string& path, const YamlNode* node,
                  const std::string& problem, const std::string& why, const std::string& fix);
// "expected <expected>, got <describe(node)>".
Error type_error(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                 const std::string& expected, const std::string& fix);

// [a-z0-9][a-z0-9_.-]{0,63}: plugin ids, quant methods, aliases, preset names.
bool is_valid_manifest_name(const std::string& s);

struct KeySpec {
  std::string_view key;
  bool required;
  std::string_view example;  // what to write, for "missing" and type errors
};

// One mapping of the manifest, checked against its key table. Borrows ctx and node.
class MapFields {
 public:
  MapFields(const ManifestCtx& ctx, const YamlNode& node, std::string path,
            std::vector<KeySpec> specs);

  // Unknown keys first (a misspelt required key reads better as "unknown, did you mean" than as
  // "missing"), then missing required keys. `extras` (top level only; nullptr elsewhere)
  // collects x_<vendor>_<name> keys as JSON; elsewhere such keys are errors.
  Status check_keys(nlohmann::json* extras) const;

  // The value of `key`, or nullptr. After check_keys, required keys are never nullptr.
  const YamlNode* find(std::string_view key) const;
  std::string path_of(std::string_view key) const;
  std::string example(std::string_view key) const;

 private:
  const ManifestCtx& ctx_;
  const YamlNode& node_;
  std::string path_;
  std::vector<KeySpec> specs_;
};

// A plain scalar that parses fully as a decimal integer within [min, max]; quoted "5" is a
// string, not an integer.
Status read_int(const ManifestCtx& ctx, const std::string& path, const YamlNode& node, int64_t min,
                int64_t max, const std::string& example, int64_t* out);
// A plain true/false (YAML 1.2 core spellings); yes/no/on/off/1/0 are refused.
Status read_bool(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                 const std::string& key, bool* out);
// Any scalar, kept as written ("version: 1.10" stays "1.10"). `single_line` refuses control
// characters and newlines; `non_empty` refuses "" and blanks.
Status read_string(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                   const std::string& example, bool non_empty, bool single_line,
                   std::size_t max_length, std::string* out);
// A scalar matching is_valid_manifest_name; `what` names it in messages ("plugin id").
Status read_name(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                 const std::string& what, const std::string& example, std::string* out);

// Returns "" when an entry is fine, else the rule it breaks (shown as the error's why).
using EntryCheck = std::function<std::string(const std::string&)>;
// A list of scalars, each passing `check`, with no repeats.
Status read_string_list(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                        const std::string& example, const EntryCheck& check,
                        std::vector<std::string>* out);
// Entry check for config-key lists: 1-256 bytes, no spaces or control characters.
std::string check_plain_word(const std::string& v);

// YAML 1.2 core schema to JSON: null/~, true/false, decimal ints (64-bit), finite floats;
// quoted and block scalars stay strings. Infinity/NaN and out-of-range numbers are errors.
Result<nlohmann::json> yaml_to_json(const ManifestCtx& ctx, const YamlNode& node,
                                    const std::string& path);

}  // namespace qforge::plugins
