#include "config/yaml_json.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

namespace qforge {
namespace {

using nlohmann::json;

// Thrown by the event handler to stop yaml-cpp mid-document; never escapes this file.
struct ConvertFailure {
  int line;  // 1-based; 0 = unknown
  std::string key;
  std::string problem;
  std::string why;
  std::string fix;
};

template <class Pred>
bool all_of(std::string_view s, Pred pred) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!pred(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool is_octal(unsigned char c) { return c >= '0' && c <= '7'; }
bool is_hex(unsigned char c) { return std::isxdigit(c) != 0; }
bool is_dec(unsigned char c) { return std::isdigit(c) != 0; }

bool is_core_float(std::string_view s) {
  // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++int_digits;
  bool dot = false;
  if (i < s.size() && s[i] == '.') {
    dot = true;
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (!dot && int_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    std::size_t exp_digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

Error scalar_error(const std::string& value, const std::string& why) {
  return bad_input("value '" + value + "' cannot be represented in JSON", why,
                   "write a finite number, or quote the value to keep it as a string");
}

// Unsigned magnitude in `base` -> JSON integer with sign, or an error past 64 bits.
Result<json> integer_to_json(const std::string& original, bool negative, std::string_view digits,
                             int base) {
  uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (ec != std::errc() || end != digits.data() + digits.size()) {
    return scalar_error(original, "the integer does not fit in 64 bits");
  }
  if (!negative) {
    if (magnitude <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return json(static_cast<int64_t>(magnitude));
    }
    return json(magnitude);
  }
  constexpr uint64_t kMinMagnitude = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1;
  if (magnitude > kMinMagnitude) {
    return scalar_error(original, "the integer is below the 64-bit minimum");
  }
  if (magnitude == kMinMagnitude) return json(std::numeric_limits<int64_t>::min());
  return json(-static_cast<int64_t>(magnitude));
}

class JsonBuilder : public YAML::EventHandler {
 public:
  JsonBuilder(const YamlJsonOptions& options, YamlLineMap* lines)
      : options_(options), lines_(lines) {}

  bool has_root() const { return has_root_; }
  json take_root() { return std::move(root_); }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    check_anchor(mark, anchor);
    if (expecting_key()) {
      fail(mark, "null or empty mapping key", "every key must be a non-empty scalar",
           "give the entry a name");
    }
    add_value(mark, json(nullptr));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    fail(mark, "YAML alias (*name) is not allowed",
         "aliases and anchors are rejected so a small file cannot expand into a huge one "
         "(\"billion laughs\")",
         "write the value out in full");
  }

  void OnAnchor(const YAML::Mark& mark, const std::string& name) override {
    fail(mark, "YAML anchor (&" + name + ") is not allowed",
         "aliases and anchors are rejected so a small file cannot expand into a huge one "
         "(\"billion laughs\")",
         "remove the anchor and write each value out in full");
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    check_anchor(mark, anchor);
    check_tag(mark, tag);
    // yaml-cpp marks plain scalars with the non-specific tag "?" and quoted/block ones with "!".
    const bool plain = tag == "?";
    if (expecting_key()) {
      Frame& map = stack_.back();
      const std::string path = yaml_join_key(map.path, value);
      if (map.value.contains(value)) {
        fail(mark, "duplicate key '" + value + "'",
             "the key appears again at line " + std::to_string(mark.line + 1) + " (first at line " +
                 std::to_string(map.key_lines[value]) + ")",
             "keep one of the two entries", path);
      }
      map.key_lines[value] = mark.line + 1;
      map.pending_key = value;
      map.has_key = true;
      if (lines_ != nullptr) (*lines_)[path] = mark.line + 1;
      return;
    }
    if (!plain) {
      add_value(mark, json(value));
      return;
    }
    Result<json> typed = yaml_plain_scalar_to_json(value);
    if (!typed.ok()) {
      fail(mark, typed.error().summary(), typed.error().why(), typed.error().fix());
    }
    add_value(mark, std::move(typed).value());
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, json::array());
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, json::object());
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    json value;
    std::string path;
    std::string pending_key;
    bool has_key = false;
    std::map<std::string, int> key_lines;
  };

  bool expecting_key() const {
    return !stack_.empty() && stack_.back().value.is_object() && !stack_.back().has_key;
  }

  // Path of the value about to be added.
  std::string child_path() const {
    if (stack_.empty()) return "";
    const Frame& top = stack_.back();
    if (top.value.is_object()) return yaml_join_key(top.path, top.pending_key);
    return top.path + "[" + std::to_string(top.value.size()) + "]";
  }

  std::string current_path() const { return child_path(); }

  [[noreturn]] void fail(const YAML::Mark& mark, std::string problem, std::string why,
                         std::string fix, std::string key = std::string()) const {
    if (key.empty()) key = current_path();
    throw ConvertFailure{mark.is_null() ? 0 : mark.line + 1, std::move(key), std::move(problem),
                         std::move(why), std::move(fix)};
  }

  void check_anchor(const YAML::Mark& mark, YAML::anchor_t anchor) const {
    if (anchor != YAML::NullAnchor) {
      fail(mark, "YAML anchor is not allowed",
           "aliases and anchors are rejected so a small file cannot expand into a huge one "
           "(\"billion laughs\")",
           "remove the anchor and write each value out in full");
    }
  }

  void check_tag(const YAML::Mark& mark, const std::string& tag) const {
    if (tag.empty() || tag == "?" || tag == "!") return;
    fail(mark, "explicit YAML tag '" + tag + "' is not allowed",
         "tags could construct arbitrary types; only plain YAML values (mappings, sequences, "
         "strings, numbers, booleans, null) are accepted",
         "remove the tag; quote the value if it must stay a string");
  }

  void open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, json empty) {
    check_anchor(mark, anchor);
    check_tag(mark, tag);
    if (expecting_key()) {
      fail(mark, "complex (non-scalar) mapping key", "keys must be plain strings",
           "use a string key");
    }
    if (stack_.size() + 1 > options_.max_depth) {
      fail(mark, "nesting deeper than " + std::to_string(options_.max_depth) + " levels",
           "deep nesting is refused to bound memory and recursion", "flatten the structure");
    }
    const std::string path = child_path();
    if (lines_ != nullptr && !stack_.empty() && stack_.back().value.is_array()) {
      (*lines_)[path] = mark.line + 1;
    }
    Frame frame;
    frame.value = std::move(empty);
    frame.path = path;
    stack_.push_back(std::move(frame));
  }

  void close() {
    Frame done = std::move(stack_.back());
    stack_.pop_back();
    insert(std::move(done.value));
  }

  void add_value(const YAML::Mark& mark, json value) {
    if (lines_ != nullptr && !stack_.empty() && stack_.back().value.is_array()) {
      (*lines_)[child_path()] = mark.line + 1;
    }
    insert(std::move(value));
  }

  void insert(json value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      has_root_ = true;
      return;
    }
    Frame& top = stack_.back();
    if (top.value.is_object()) {
      top.value[top.pending_key] = std::move(value);
      top.has_key = false;
    } else {
      top.value.push_back(std::move(value));
    }
  }

  const YamlJsonOptions& options_;
  YamlLineMap* lines_;
  std::vector<Frame> stack_;
  json root_;
  bool has_root_ = false;
};

Error failure_to_error(const std::string& source, const ConvertFailure& f) {
  std::string what = source;
  if (f.line > 0) what += ":" + std::to_string(f.line);
  what += ": ";
  if (!f.key.empty()) what += "key '" + f.key + "': ";
  what += f.problem;
  return bad_input(std::move(what), f.why, f.fix);
}

}  // namespace

std::string yaml_join_key(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

Result<json> yaml_plain_scalar_to_json(const std::string& value) {
  if (value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL") {
    return json(nullptr);
  }
  if (value == "true" || value == "True" || value == "TRUE") return json(true);
  if (value == "false" || value == "False" || value == "FALSE") return json(false);

  std::string_view v(value);
  if (v.size() > 2 && v[0] == '0' && v[1] == 'x' && all_of(v.substr(2), is_hex)) {
    return integer_to_json(value, false, v.substr(2), 16);
  }
  if (v.size() > 2 && v[0] == '0' && v[1] == 'o' && all_of(v.substr(2), is_octal)) {
    return integer_to_json(value, false, v.substr(2), 8);
  }
  const bool negative = !v.empty() && v[0] == '-';
  std::string_view unsigned_part = (!v.empty() && (v[0] == '-' || v[0] == '+')) ? v.substr(1) : v;
  if (all_of(unsigned_part, is_dec)) {
    return integer_to_json(value, negative, unsigned_part, 10);
  }
  if (unsigned_part == ".inf" || unsigned_part == ".Inf" || unsigned_part == ".INF" ||
      v == ".nan" || v == ".NaN" || v == ".NAN") {
    return scalar_error(value, "JSON has no infinity or NaN");
  }
  if (is_core_float(v)) {
    double d = 0.0;
    auto [end, ec] =
        std::from_chars(unsigned_part.data(), unsigned_part.data() + unsigned_part.size(), d);
    if (ec != std::errc() || end != unsigned_part.data() + unsigned_part.size() ||
        !std::isfinite(d)) {
      return scalar_error(value, "the number is out of the range of a 64-bit float");
    }
    return json(negative ? -d : d);
  }
  return json(value);
}

Result<json> yaml_to_json(const std::string& text, const std::string& source,
                          const YamlJsonOptions& options, YamlLineMap* lines) {
  std::istringstream in(text);
  JsonBuilder builder(options, lines);
  try {
    YAML::Parser parser(in);
    if (!parser.HandleNextDocument(builder)) return json(nullptr);
    // A second document would be silently dropped by a naive reader; refuse it instead.
    JsonBuilder second(options, nullptr);
    if (parser.HandleNextDocument(second)) {
      return bad_input(source + ": more than one YAML document",
                       "the file holds a second document after '---'; only one is read",
                       "keep a single document per file");
    }
  } catch (const ConvertFailure& f) {
    return failure_to_error(source, f);
  } catch (const YAML::Exception& e) {
    std::string what = source;
    if (!e.mark.is_null()) {
      what += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    }
    return bad_input(what + ": malformed YAML", e.msg, "fix the syntax at the position shown");
  }
  if (!builder.has_root()) return json(nullptr);
  return builder.take_root();
}

}  // namespace qforge
