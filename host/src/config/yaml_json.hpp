// YAML -> JSON for the host's own files (user configs; reusable for manifests): one document, a
// safe subset of YAML with JSON-compatible scalar typing.
//
// Rejected, each with the line and key path: anchors and aliases ("billion laughs"), explicit
// tags (`!!python/object`), duplicate keys, non-scalar or null keys, more than one document,
// nesting deeper than `max_depth`, and numbers JSON cannot hold (.inf, .nan, out-of-range ints).
// Plain scalars are typed by the YAML 1.2 core schema: null/~/empty -> null,
// true/false (any case variant the schema allows) -> bool, [-+]?[0-9]+ / 0x.. / 0o.. -> int,
// decimal/exponent forms -> float, anything else -> string. Quoted and block scalars are always
// strings, so `"3"` stays the string "3". YAML 1.1 spellings such as yes/no/on/off stay strings.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "qforge/error.hpp"

namespace qforge {

struct YamlJsonOptions {
  std::size_t max_depth = 64;  // nested mappings/sequences; the root mapping is depth 1
};

// Key path -> 1-based line where that key (or sequence item) starts, e.g.
// "methods[0].priority" -> 12. Lets callers name lines in their own validation errors.
using YamlLineMap = std::map<std::string, int>;

// Converts `text` (one YAML document) to JSON. `source` names the file in errors, which are
// bad_input (exit code 4): what = "<source>:<line>: key '<path>': <problem>". An empty document
// converts to null. `lines`, when given, receives the line of every key and sequence item.
Result<nlohmann::json> yaml_to_json(const std::string& text, const std::string& source,
                                    const YamlJsonOptions& options = {},
                                    YamlLineMap* lines = nullptr);

// The core-schema typing of one plain (unquoted) scalar, exposed for tests and for callers that
// type `--set` style values the YAML way. Fails for .inf/.nan and integers beyond 64 bits.
Result<nlohmann::json> yaml_plain_scalar_to_json(const std::string& value);

// Joins key paths the way errors print them: ("a", "b") -> "a.b", ("", "b") -> "b".
std::string yaml_join_key(const std::string& parent, const std::string& key);

}  // namespace qforge
