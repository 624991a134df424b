// Private pieces of the architecture-map room, exposed for its own files and unit tests.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"
#include "qforge/model.hpp"

namespace qforge::model {

// ------------------------------------------------------------------ shape expressions

// Checks the syntax of a shape expression without a config: integers, identifiers
// ([A-Za-z_][A-Za-z0-9_]*), + - * /, unary minus and parentheses. The error's `why` says what is
// wrong at which character; callers put file and key in front.
Status check_expression(const std::string& expression);

// Identifiers an expression refers to, in order of first use (no duplicates).
Result<std::vector<std::string>> expression_identifiers(const std::string& expression);

// Evaluates with config values; a key missing from config.json (or JSON null) falls back to
// `defaults` (evaluated the same way, cycles rejected). `trace`, when given, receives
// "key=value" for every key read, "key=value (default: expr)" for derived ones, for errors.
Result<int64_t> evaluate_expression(
    const std::string& expression, const nlohmann::json& config,
    const std::vector<std::pair<std::string, std::string>>& defaults,
    std::vector<std::string>* trace = nullptr);

// ------------------------------------------------------------------ maps

// Parses one map from YAML text; `source` names the file in errors.
Result<ArchitectureMap> parse_architecture_map(const std::string& text,
                                               const std::filesystem::path& source);

// Parses a role as YAML spells it ("linear", "conv1d", "embedding", "norm", "output_head",
// "other").
bool parse_module_role(const std::string& text, ModuleRole* role);

// ------------------------------------------------------------------ classification

// HQQ's linear tag: the module path without "model", "layers" and numeric parts
// (transformers integrations/hqq.py name_to_linear_tag).
std::string linear_tag(const std::string& module_name);

// Name heuristics for modules no pattern of the map matched (documented in
// docs/architecture-maps.md).
bool looks_like_embedding(const std::string& module_name);
bool looks_like_norm(const std::string& module_name);

// The classification itself, on a tensor list and config.json; the public overload passes the
// checkpoint's. `tensors` need not be sorted.
Result<ModelLayout> classify_modules(const ArchitectureMap& map,
                                     const std::vector<TensorInfo>& tensors,
                                     const nlohmann::json& config);

}  // namespace qforge::model
