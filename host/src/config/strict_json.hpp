// JSON text -> nlohmann::json with the checks plain nlohmann parsing lacks: duplicate keys are an
// error (nlohmann keeps the last silently), nesting is capped, and every error names the line.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

#include "qforge/error.hpp"

namespace qforge {

// Parses `text` as strict RFC 8259 JSON (no comments). Errors are bad_input (exit code 4):
// what = "<source>:<line>:<column>: ..." and, for duplicate keys, the key path ("a.b[0].c").
Result<nlohmann::json> parse_strict_json(const std::string& text, const std::string& source,
                                         std::size_t max_depth = 64);

}  // namespace qforge
