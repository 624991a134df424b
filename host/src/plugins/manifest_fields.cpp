#include "plugins/manifest_fields.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>
#include <unordered_set>
#include <utility>

namespace qforge::plugins {
namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool has_control_or_newline(const std::string& s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

// x_<vendor>_<name> with lowercase letters, digits and underscores.
bool is_vendor_key(const std::string& key) {
  if (key.size() < 5 || key.compare(0, 2, "x_") != 0) return false;
  const std::size_t sep = key.find('_', 2);
  if (sep == std::string::npos || sep == 2 || sep + 1 >= key.size()) return false;
  return std::all_of(key.begin() + 2, key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string join_names(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::string_view n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

bool is_core_true(const std::string& s) { return s == "true" || s == "True" || s == "TRUE"; }
bool is_core_false(const std::string& s) { return s == "false" || s == "False" || s == "FALSE"; }

bool looks_like_integer(const std::string& s) {
  std::size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i >= s.size()) return false;
  return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(i), s.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

// YAML 1.2 core schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool looks_like_float(const std::string& s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  std::size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    std::size_t exp_digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

bool looks_like_special_float(const std::string& s) {
  std::string_view v(s);
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) v.remove_prefix(1);
  return v == ".inf" || v == ".Inf" || v == ".INF" || v == ".nan" || v == ".NaN" || v == ".NAN";
}

// Parses a whole decimal integer (optional sign); false on anything else or overflow.
bool parse_int64(const std::string& s, int64_t* out) {
  if (!looks_like_integer(s)) return false;
  const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
  const auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string index_path(const std::string& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

Error field_error(const ManifestCtx& ctx, const std::string& path, const YamlNode* node,
                  const std::string& problem, const std::string& why, const std::string& fix) {
  std::string full_why = why;
  if (node != nullptr && node->line > 0) full_why = "at " + node->where() + ": " + why;
  return bad_input(ctx.source + ": field '" + path + "': " + problem, full_why, fix);
}

std::string describe(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::kNull:
      return "nothing (null)";
    case YamlNode::Kind::kScalar:
      return node.plain ? quote_for_message(node.value)
                        : "the quoted string " + quote_for_message(node.value);
    case YamlNode::Kind::kSequence:
      return "a list";
    case YamlNode::Kind::kMap:
      return "a mapping";
  }
  return "an unknown node";
}

Error type_error(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                 const std::string& expected, const std::string& fix) {
  return field_error(ctx, path, &node, "expected " + expected + ", got " + describe(node),
                     "the value is " + describe(node) + "; the schema requires " + expected, fix);
}
bool is_valid_manifest_name(const std::string& s) {
  if (s.empty() || s.size() > kManifestMaxNameLength || !is_name_start(s[0])) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_name_start(c) || c == '_' || c == '.' || c == '-'; });
}
std::string escape_key(const std::string& key) {
  const std::string quoted = quote_for_message(key, 60);
  return quoted.substr(1, quoted.size() - 2);
}
// --- mappings ---------------------------------------------------------------------------------

MapFields::MapFields(const ManifestCtx& ctx, const YamlNode& node, std::string path,
                     std::vector<KeySpec> specs)
    : ctx_(ctx), node_(node), path_(std::move(path)), specs_(std::move(specs)) {}

const YamlNode* MapFields::find(std::string_view key) const {
  for (std::size_t i = 0; i < node_.keys.size(); ++i) {
    if (node_.keys[i].value == key) return &node_.values[i];
  }
  return nullptr;
}

std::string MapFields::path_of(std::string_view key) const {
  return join_path(path_, std::string(key));
}

std::string MapFields::example(std::string_view key) const {
  for (const KeySpec& s : specs_) {
    if (s.key == key) return std::string(s.example);
  }
  return std::string(key) + ": ...";
}

Status MapFields::check_keys(nlohmann::json* extras) const {
  std::vector<std::string_view> allowed;
  for (const KeySpec& s : specs_) allowed.push_back(s.key);
  for (std::size_t i = 0; i < node_.keys.size(); ++i) {
    const YamlNode& key_node = node_.keys[i];
    const std::string& key = key_node.value;
    const bool known = std::find(allowed.begin(), allowed.end(), key) != allowed.end();
    if (known) continue;
    const std::string field = join_path(path_, escape_key(key));
    if (key.compare(0, 2, "x_") == 0) {
      if (extras == nullptr) {
        return field_error(ctx_, field, &key_node, "vendor keys are allowed only at the top level",
                           "x_<vendor>_ keys are kept as vendor data only at the top level of "
                           "the manifest; here they would be silently meaningless",
                           "move it to the top level, e.g. 'x_acme_" + key.substr(2) + "'");
      }
      if (!is_vendor_key(key)) {
        return field_error(ctx_, field, &key_node, "malformed vendor key",
                           "vendor keys must look like x_<vendor>_<name> with lowercase "
                           "letters, digits and underscores; got " +
                               quote_for_message(key),
                           "rename it, e.g. 'x_acme_build_date'");
      }
      auto value = yaml_to_json(ctx_, node_.values[i], key);
      if (!value.ok()) return value.error();
      (*extras)[key] = std::move(value).value();
      continue;
    }
    std::string suggestion;
    if (key.size() <= kManifestMaxNameLength) {
      std::size_t best = 3;
      for (std::string_view candidate : allowed) {
        const std::size_t d = edit_distance(key, std::string(candidate));
        if (d < best) {
          best = d;
          suggestion = std::string(candidate);
        }
      }
    }
    std::string why = "allowed keys here: " + join_names(allowed);
    if (!suggestion.empty()) why += "; did you mean '" + suggestion + "'?";
    return field_error(
        ctx_, field, &key_node, "unknown key", why,
        (suggestion.empty() ? "remove it" : "rename it to '" + suggestion + "' or remove it") +
            std::string("; vendor data goes in top-level keys named x_<vendor>_<name>"));
  }
  for (const KeySpec& s : specs_) {
    if (!s.required || find(s.key) != nullptr) continue;
    std::string present;
    for (std::size_t k = 0; k < node_.keys.size(); ++k) {
      if (k == 20) {
        present += ", ...";
        break;
      }
      if (k > 0) present += ", ";
      present += quote_for_message(node_.keys[k].value, 40);
    }
    return field_error(ctx_, path_of(s.key), &node_, "missing required key",
                       "this mapping has " + (present.empty() ? "no keys" : "keys " + present) +
                           " but no '" + std::string(s.key) + "'",
                       "add '" + std::string(s.example) + "'; " + kManifestSchemaDoc);
  }
  return ok_status();
}

// --- scalars ----------------------------------------------------------------------------------

Status read_int(const ManifestCtx& ctx, const std::string& path, const YamlNode& node, int64_t min,
                int64_t max, const std::string& example, int64_t* out) {
  const std::string fix = "write a whole number without quotes, e.g. '" + example + "'";
  if (!node.is_scalar() || !node.plain) return type_error(ctx, path, node, "an integer", fix);
  if (!looks_like_integer(node.value)) return type_error(ctx, path, node, "an integer", fix);
  int64_t v = 0;
  if (!parse_int64(node.value, &v) || v < min || v > max) {
    return field_error(
        ctx, path, &node, "integer out of range, got " + describe(node),
        "the value must be between " + std::to_string(min) + " and " + std::to_string(max), fix);
  }
  *out = v;
  return ok_status();
}

Status read_bool(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                 const std::string& key, bool* out) {
  const std::string fix = "write '" + key + ": true' or '" + key + ": false' (no quotes)";
  if (node.is_scalar() && node.plain) {
    if (is_core_true(node.value)) {
      *out = true;
      return ok_status();
    }
    if (is_core_false(node.value)) {
      *out = false;
      return ok_status();
    }
  }
  return type_error(ctx, path, node, "true or false", fix);
}

// Any scalar, kept as written ("version: 1.10" stays "1.10"). `single_line` refuses control
// characters and newlines; `non_empty` refuses "" and blanks.
Status read_string(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                   const std::string& example, bool non_empty, bool single_line,
                   std::size_t max_length, std::string* out) {
  const std::string fix = "write a string, e.g. '" + example + "'";
  if (!node.is_scalar()) return type_error(ctx, path, node, "a string", fix);
  if (non_empty && is_blank(node.value)) {
    return field_error(ctx, path, &node, "must not be empty",
                       "the value is empty; the schema requires a non-empty string", fix);
  }
  if (single_line && has_control_or_newline(node.value)) {
    return field_error(ctx, path, &node, "must be a single line",
                       "the value " + describe(node) + " contains a newline or control character",
                       "write it on one line, e.g. '" + example + "'");
  }
  if (node.value.size() > max_length) {
    return field_error(ctx, path, &node, "too long",
                       "the value has " + std::to_string(node.value.size()) + " bytes; at most " +
                           std::to_string(max_length) + " are allowed",
                       "shorten it");
  }
  *out = node.value;
  return ok_status();
}

Status read_name(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                 const std::string& what, const std::string& example, std::string* out) {
  const std::string rule =
      "a " + what +
      " is 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or "
      "digit";
  if (!node.is_scalar()) {
    return type_error(ctx, path, node, "a " + what + " string", "write e.g. '" + example + "'");
  }
  if (!is_valid_manifest_name(node.value)) {
    return field_error(ctx, path, &node, "invalid " + what + " " + describe(node), rule,
                       "use lowercase letters, digits, '_', '.', '-', e.g. '" + example + "'");
  }
  *out = node.value;
  return ok_status();
}

Status read_string_list(const ManifestCtx& ctx, const std::string& path, const YamlNode& node,
                        const std::string& example, const EntryCheck& check,
                        std::vector<std::string>* out) {
  if (!node.is_sequence()) {
    return type_error(ctx, path, node, "a list of strings",
                      "write a list, e.g. '" + example + "' (or '[]' for none)");
  }
  std::vector<std::string> values;
  std::unordered_set<std::string> seen;  // a 1 MiB list must not cost O(n^2)
  for (std::size_t i = 0; i < node.items.size(); ++i) {
    const YamlNode& item = node.items[i];
    const std::string item_path = index_path(path, i);
    if (!item.is_scalar()) {
      return type_error(ctx, item_path, item, "a string", "write a list, e.g. '" + example + "'");
    }
    const std::string rule = check(item.value);
    if (!rule.empty()) {
      return field_error(ctx, item_path, &item, "invalid entry " + describe(item), rule,
                         "write entries like '" + example + "'");
    }
    if (!seen.insert(item.value).second) {
      return field_error(ctx, item_path, &item, "duplicate entry " + describe(item),
                         "the list already holds " + describe(item), "remove the repeat");
    }
    values.push_back(item.value);
  }
  *out = std::move(values);
  return ok_status();
}

std::string check_plain_word(const std::string& v) {
  if (v.empty() || v.size() > kManifestMaxLineLength) return "entries are 1-256 characters";
  for (char c : v) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return "entries must not contain spaces or control characters";
    }
  }
  return "";
}

// --- JSON (presets and vendor extras) ---------------------------------------------------------

// YAML 1.2 core schema: null, bool, decimal int, float; quoted or block scalars stay strings.
Result<nlohmann::json> yaml_to_json(const ManifestCtx& ctx, const YamlNode& node,
                                    const std::string& path) {
  switch (node.kind) {
    case YamlNode::Kind::kNull:
      return nlohmann::json(nullptr);
    case YamlNode::Kind::kScalar: {
      const std::string& s = node.value;
      if (!node.plain) return nlohmann::json(s);
      if (is_core_true(s)) return nlohmann::json(true);
      if (is_core_false(s)) return nlohmann::json(false);
      if (looks_like_integer(s)) {
        int64_t v = 0;
        if (!parse_int64(s, &v)) {
          return field_error(ctx, path, &node, "integer out of range, got " + describe(node),
                             "integers must fit in 64 bits",
                             "quote it to keep it as text, or use a smaller number");
        }
        return nlohmann::json(v);
      }
      if (looks_like_float(s)) {
        double d = 0;
        const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
        const auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), d);
        if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(d)) {
          return field_error(ctx, path, &node, "number out of range, got " + describe(node),
                             "the value does not fit in a 64-bit float",
                             "quote it to keep it as text, or use a smaller number");
        }
        return nlohmann::json(d);
      }
      if (looks_like_special_float(s)) {
        return field_error(ctx, path, &node,
                           "infinity and NaN are not allowed, got " + describe(node),
                           "configs cross the plugin ABI as JSON, which has no infinity or NaN",
                           "use a finite number, or quote it to keep it as text");
      }
      return nlohmann::json(s);
    }
    case YamlNode::Kind::kSequence: {
      nlohmann::json array = nlohmann::json::array();
      for (std::size_t i = 0; i < node.items.size(); ++i) {
        auto v = yaml_to_json(ctx, node.items[i], index_path(path, i));
        if (!v.ok()) return v.error();
        array.push_back(std::move(v).value());
      }
      return array;
    }
    case YamlNode::Kind::kMap: {
      nlohmann::json object = nlohmann::json::object();
      for (std::size_t i = 0; i < node.keys.size(); ++i) {
        auto v = yaml_to_json(ctx, node.values[i], join_path(path, escape_key(node.keys[i].value)));
        if (!v.ok()) return v.error();
        object[node.keys[i].value] = std::move(v).value();
      }
      return object;
    }
  }
  return nlohmann::json(nullptr);
}

}  // namespace qforge::plugins
