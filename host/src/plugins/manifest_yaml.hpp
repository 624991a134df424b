// A strict YAML reader for untrusted manifests: builds a small tree straight from yaml-cpp's event
// stream and refuses, before any tree exists, what a manifest never needs and an attacker loves:
// anchors and aliases ("billion laughs"), explicit tags, duplicate or non-scalar keys, deep
// nesting, several documents, invalid UTF-8 and control characters.
// Private to host/src/plugins. Note [strict yaml]: yaml-cpp 0.7's YAML::Load silently keeps one
// of two duplicate keys and expands aliases into shared nodes, so the node API cannot be trusted
// to see what the file really says; the event stream can.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "qforge/error.hpp"

namespace qforge::plugins {

inline constexpr std::size_t kYamlMaxDepth = 64;  // nested mappings/lists; manifests need ~6

struct YamlNode {
  enum class Kind { kNull, kScalar, kSequence, kMap };

  Kind kind = Kind::kNull;
  int line = 0;                  // 1-based; 0 when unknown
  int column = 0;                // 1-based; 0 when unknown
  std::string value;             // kScalar: the text after unescaping
  bool plain = true;             // kScalar: false for quoted and block scalars (always a string)
  std::vector<YamlNode> items;   // kSequence: the elements
  std::vector<YamlNode> keys;    // kMap: scalar key nodes, in document order, all distinct
  std::vector<YamlNode> values;  // kMap: values, parallel to `keys`

  bool is_map() const noexcept { return kind == Kind::kMap; }
  bool is_sequence() const noexcept { return kind == Kind::kSequence; }
  bool is_scalar() const noexcept { return kind == Kind::kScalar; }
  bool is_null() const noexcept { return kind == Kind::kNull; }
  // "line 3, column 7" (or "" when the position is unknown).
  std::string where() const;
};

// Parses exactly one YAML document. `source` names the input in errors ("bnb.yaml: ..."); a field
// error names the dotted path of the offending node ("methods[0].priority"). Never throws.
Result<YamlNode> parse_strict_yaml(const std::string& text, const std::string& source);

// `text` shown safely in a message: quoted, control and non-ASCII bytes escaped, cut at `max_len`.
std::string quote_for_message(const std::string& text, std::size_t max_len = 60);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
// `bad_offset` (optional) receives the offset of the first bad byte.
bool is_valid_utf8(const std::string& text, std::size_t* bad_offset = nullptr);

}  // namespace qforge::plugins
