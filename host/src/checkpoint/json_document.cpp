// Strict JSON documents and small format helpers for the checkpoint room.
#include <qforge/qf_plugin.h>

#include <cstddef>
#include <iterator>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint_internal.hpp"

namespace qforge::checkpoint {

size_t find_invalid_utf8(std::string_view text) noexcept {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return i;  // continuation byte, 0xC0/0xC1 (overlong) or above 0xF4
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0u) != 0x80u) return i;
      cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

namespace {

using nlohmann::json;

// An input iterator that records the furthest byte the lexer has read, so errors found in SAX
// callbacks (duplicate key, depth) can name a line and column.
class TrackingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;
  TrackingIterator(const char* p, const char** furthest) : p_(p), furthest_(furthest) {}
  reference operator*() const { return *p_; }
  TrackingIterator& operator++() {
    ++p_;
    if (p_ > *furthest_) *furthest_ = p_;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const TrackingIterator& o) const { return p_ == o.p_; }
  bool operator!=(const TrackingIterator& o) const { return p_ != o.p_; }

 private:
  const char* p_;
  const char** furthest_;
};

// Builds the DOM from SAX events. nlohmann 3.11's callback parser (what parse_strict_json
// uses) rescans the parent object after every nested object ends, which is quadratic for a
// header of 200k tensors (ST15); this builder is linear, refuses duplicate keys and caps depth.
class DomBuilder {
 public:
  explicit DomBuilder(size_t max_depth) : max_depth_(max_depth) {}

  bool null() { return put(json(nullptr)); }
  bool boolean(bool v) { return put(json(v)); }
  bool number_integer(json::number_integer_t v) { return put(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return put(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return put(json(v)); }
  bool string(json::string_t& v) { return put(json(std::move(v))); }
  bool binary(json::binary_t&) { return fail("binary values are not JSON", ""); }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    json& object = *stack_.back();
    if (object.contains(k)) {
      return fail("duplicate key '" + k + "'",
                  "the key appears twice in the same object; plain JSON readers would silently "
                  "keep only the last value");
    }
    slot_ = &object[k];
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    syntax_position_ = position;
    const std::string message = e.what();
    const size_t at = message.find("syntax error");
    syntax_ = at == std::string::npos ? message : message.substr(at);
    return false;
  }

  json root;
  std::string problem, why, syntax_;
  std::size_t syntax_position_ = 0;

 private:
  bool fail(std::string p, std::string w) {
    problem = std::move(p);
    why = std::move(w);
    return false;
  }
  json* place(json&& value) {
    if (stack_.empty()) {
      root = std::move(value);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(value));
      return &top.back();
    }
    *slot_ = std::move(value);
    return slot_;
  }
  bool put(json&& value) {
    place(std::move(value));
    return true;
  }
  bool open(json&& container) {
    if (stack_.size() + 1 > max_depth_) {
      return fail("nesting deeper than " + std::to_string(max_depth_) + " levels",
                  "deep nesting is refused to bound memory and time");
    }
    stack_.push_back(place(std::move(container)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  size_t max_depth_;
  std::vector<json*> stack_;
  json* slot_ = nullptr;
};

// nlohmann quotes the last bytes it read in syntax errors, which can cut a multi-byte character;
// error texts end up in JSON reports, so invalid bytes become '?'.
std::string sanitize_utf8(std::string text) {
  for (size_t bad = find_invalid_utf8(text); bad != std::string::npos;
       bad = find_invalid_utf8(text)) {
    text[bad] = '?';
  }
  return text;
}

std::string position(const std::string& text, size_t offset) {
  if (offset > text.size()) offset = text.size();
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return std::to_string(line) + ":" + std::to_string(offset - line_start + 1);
}

}  // namespace

Result<nlohmann::json> parse_json_document(const std::string& text, const std::string& source,
                                           size_t max_depth) {
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
      static_cast<unsigned char>(text[1]) == 0xBB && static_cast<unsigned char>(text[2]) == 0xBF) {
    return bad_input(source + ": starts with a UTF-8 byte order mark",
                     "JSON text must not begin with a BOM (EF BB BF); Python's json refuses it",
                     "save the file as UTF-8 without BOM");
  }
  const char* begin = text.data();
  const char* furthest = begin;
  DomBuilder builder(max_depth);
  bool ok = false;
  try {
    ok = json::sax_parse(TrackingIterator(begin, &furthest),
                         TrackingIterator(begin + text.size(), &furthest), &builder,
                         json::input_format_t::json, /*strict=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    builder.problem = "invalid JSON value";
    builder.why = e.what();
  }
  if (ok) return std::move(builder.root);
  if (!builder.problem.empty()) {
    return bad_input(source + ":" + position(text, static_cast<size_t>(furthest - begin)) + ": " +
                         builder.problem,
                     sanitize_utf8(builder.why), "fix the JSON at the position shown");
  }
  const size_t offset = builder.syntax_position_ > 0 ? builder.syntax_position_ - 1 : 0;
  return bad_input(
      source + ":" + position(text, offset) + ": malformed JSON",
      builder.syntax_.empty() ? "the text is not JSON" : sanitize_utf8(builder.syntax_),
      "fix the syntax at the position shown");
}

int safetensors_dtype_rank(DLDataType dtype) noexcept {
  if (dtype.lanes != 1) return -1;
  struct Row {
    uint8_t code;
    uint8_t bits;
  };
  // Ascending, as the reference enum lists them.
  static constexpr Row kOrder[] = {
      {QF_DL_BOOL, 8},          {kDLUInt, 8}, {kDLInt, 8},   {QF_DL_FLOAT8_E5M2, 8},
      {QF_DL_FLOAT8_E4M3FN, 8}, {kDLInt, 16}, {kDLUInt, 16}, {kDLFloat, 16},
      {kDLBfloat, 16},          {kDLInt, 32}, {kDLUInt, 32}, {kDLFloat, 32},
      {kDLFloat, 64},           {kDLInt, 64}, {kDLUInt, 64},
  };
  int rank = 0;
  for (const Row& row : kOrder) {
    if (row.code == dtype.code && row.bits == dtype.bits) return rank;
    ++rank;
  }
  return -1;
}

}  // namespace qforge::checkpoint
