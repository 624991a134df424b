// Architecture maps: parsing manifests/architectures/*.yaml strictly, loading folders of them,
// and picking the map for a config.json. The format is documented in docs/architecture-maps.md.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <system_error>

#include "config/yaml_json.hpp"
#include "model/model_internal.hpp"
#include "qforge/logging.hpp"

namespace qforge {
namespace model {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::uintmax_t kMapMaxBytes = 1u << 20;  // a map is a few dozen lines
constexpr size_t kMapMaxDepth = 8;
constexpr int kSchemaVersion = 1;

const char* const kFixSeeDocs = "see docs/architecture-maps.md for the map format";

struct RoleName {
  ModuleRole role;
  const char* name;
};
constexpr RoleName kRoleNames[] = {
    {ModuleRole::kLinear, "linear"},          {ModuleRole::kConv1D, "conv1d"},
    {ModuleRole::kEmbedding, "embedding"},    {ModuleRole::kNorm, "norm"},
    {ModuleRole::kOutputHead, "output_head"}, {ModuleRole::kOther, "other"},
};

std::string type_name(const json& j) { return j.is_null() ? "null" : std::string(j.type_name()); }

// Errors name "<file>:<line>: key '<path>'" like the YAML reader's own.
class MapContext {
 public:
  MapContext(const fs::path& source, const YamlLineMap& lines) : source_(source), lines_(lines) {}

  Error error(const std::string& key, const std::string& problem, const std::string& why,
              const std::string& fix = kFixSeeDocs) const {
    std::string where = source_.string();
    auto it = lines_.find(key);
    if (it != lines_.end()) where += ":" + std::to_string(it->second);
    if (!key.empty()) where += ": key '" + key + "'";
    return bad_input(where + ": " + problem, why, fix);
  }

 private:
  const fs::path& source_;
  const YamlLineMap& lines_;
};

Status check_keys(const MapContext& ctx, const json& object, const std::string& path,
                  const std::set<std::string>& allowed, const std::set<std::string>& required) {
  for (const auto& item : object.items()) {
    if (allowed.count(item.key()) == 0) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return ctx.error(yaml_join_key(path, item.key()), "unknown key",
                       "the keys allowed here are: " + list,
                       "remove it or fix its spelling (" + std::string(kFixSeeDocs) + ")");
    }
  }
  for (const auto& r : required) {
    if (object.find(r) == object.end()) {
      return ctx.error(path, "missing key '" + r + "'", "every architecture map sets it");
    }
  }
  return ok_status();
}

Result<std::string> get_string(const MapContext& ctx, const json& value, const std::string& key) {
  if (!value.is_string()) {
    return ctx.error(key, "expected a string, got " + type_name(value),
                     "this key holds text (quote it in YAML when in doubt)");
  }
  return value.get<std::string>();
}

Result<std::vector<std::string>> get_string_list(const MapContext& ctx, const json& value,
                                                 const std::string& key) {
  if (!value.is_array()) {
    return ctx.error(key, "expected a list of strings, got " + type_name(value),
                     "write it as [a, b] or as '- a' lines");
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string item_key = key + "[" + std::to_string(i) + "]";
    auto s = get_string(ctx, value[i], item_key);
    if (!s.ok()) return s.error();
    if (s.value().empty()) return ctx.error(item_key, "empty string", "names are never empty");
    if (!seen.insert(s.value()).second) {
      return ctx.error(item_key, "'" + s.value() + "' is listed twice", "list each name once");
    }
    out.push_back(s.value());
  }
  return out;
}

Status check_regex(const MapContext& ctx, const std::string& pattern, const std::string& key) {
  if (pattern.empty()) return ctx.error(key, "empty regular expression", "it would match nothing");
  try {
    std::regex re(pattern, std::regex::ECMAScript);
    (void)re;
  } catch (const std::regex_error& e) {
    return ctx.error(key, "bad regular expression '" + pattern + "'",
                     std::string("std::regex (ECMAScript) rejects it: ") + e.what(),
                     "fix the pattern; it is matched against whole module names such as "
                     "'model.layers.0.self_attn.q_proj'");
  }
  return ok_status();
}

// An expression may be written as a YAML integer (8) or string ("4 * n_embd").
Result<std::string> get_expression(const MapContext& ctx, const json& value,
                                   const std::string& key) {
  std::string text;
  if (value.is_number_integer()) {
    text = value.dump();
  } else if (value.is_string()) {
    text = value.get<std::string>();
  } else {
    return ctx.error(key, "expected a shape expression, got " + type_name(value),
                     "write an integer or an expression over config.json keys, e.g. "
                     "'num_attention_heads * head_dim'");
  }
  Status syntax = check_expression(text);
  if (!syntax.ok()) {
    return ctx.error(key, syntax.error().summary(), syntax.error().why(), syntax.error().fix());
  }
  return text;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])) != 0) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
  });
}

bool is_family_name(const std::string& s) {
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (s.empty() || s.size() > 64 || !lower_or_digit(s[0])) return false;
  return std::all_of(s.begin(), s.end(),
                     [&](char c) { return lower_or_digit(c) || c == '_' || c == '-' || c == '.'; });
}

Status parse_modules(const MapContext& ctx, const json& value, ArchitectureMap& map) {
  if (!value.is_array()) {
    return ctx.error("modules", "expected a list of module patterns, got " + type_name(value),
                     "write '- {match: ..., role: ...}' items");
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string path = "modules[" + std::to_string(i) + "]";
    const json& item = value[i];
    if (!item.is_object()) {
      return ctx.error(path, "expected a mapping, got " + type_name(item),
                       "each module pattern is {match: REGEX, role: ROLE[, out: EXPR, in: EXPR]}");
    }
    QF_RETURN_IF_ERROR(
        check_keys(ctx, item, path, {"match", "role", "out", "in"}, {"match", "role"}));
    ModulePattern pattern;
    auto match = get_string(ctx, item["match"], path + ".match");
    if (!match.ok()) return match.error();
    QF_RETURN_IF_ERROR(check_regex(ctx, match.value(), path + ".match"));
    pattern.regex = match.value();
    auto role = get_string(ctx, item["role"], path + ".role");
    if (!role.ok()) return role.error();
    if (!parse_module_role(role.value(), &pattern.role)) {
      return ctx.error(path + ".role", "unknown role '" + role.value() + "'",
                       "roles are linear, conv1d, embedding, norm, output_head, other");
    }
    const bool has_dims =
        pattern.role == ModuleRole::kLinear || pattern.role == ModuleRole::kConv1D ||
        pattern.role == ModuleRole::kOutputHead || pattern.role == ModuleRole::kOther;
    for (const char* dim : {"out", "in"}) {
      auto it = item.find(dim);
      if (it == item.end()) continue;
      const std::string key = path + "." + dim;
      if (!has_dims) {
        return ctx.error(key, "a " + role.value() + " has no in/out features",
                         "shape expressions are for linear, conv1d, output_head and other modules",
                         "remove the key");
      }
      auto expr = get_expression(ctx, *it, key);
      if (!expr.ok()) return expr.error();
      (std::string(dim) == "out" ? pattern.out_features : pattern.in_features) = expr.value();
    }
    map.modules.push_back(std::move(pattern));
  }
  return ok_status();
}

}  // namespace

bool parse_module_role(const std::string& text, ModuleRole* role) {
  for (const auto& r : kRoleNames) {
    if (text == r.name) {
      *role = r.role;
      return true;
    }
  }
  return false;
}

Result<ArchitectureMap> parse_architecture_map(const std::string& text, const fs::path& source) {
  YamlLineMap lines;
  auto parsed = yaml_to_json(text, source.string(), YamlJsonOptions{kMapMaxDepth}, &lines);
  if (!parsed.ok()) return parsed.error();
  const json& doc = parsed.value();
  const MapContext ctx(source, lines);
  if (!doc.is_object()) {
    return ctx.error("", "the top level is " + type_name(doc) + ", not a mapping",
                     "an architecture map is a mapping with schema, family, modules, ...");
  }
  QF_RETURN_IF_ERROR(
      check_keys(ctx, doc, "",
                 {"schema", "family", "model_types", "architectures", "tie_word_embeddings_default",
                  "output_head", "input_embedding", "defaults", "modules"},
                 {"schema", "family", "tie_word_embeddings_default", "modules"}));
  ArchitectureMap map;
  map.source = source;

  const json& schema = doc["schema"];
  if (!schema.is_number_integer() || schema.get<int64_t>() != kSchemaVersion) {
    return ctx.error("schema", "unsupported schema " + schema.dump(),
                     "this qforge reads schema " + std::to_string(kSchemaVersion),
                     "write 'schema: 1' (or use the qforge the map was written for)");
  }
  auto family = get_string(ctx, doc["family"], "family");
  if (!family.ok()) return family.error();
  if (!is_family_name(family.value())) {
    return ctx.error("family", "bad family name '" + family.value() + "'",
                     "a family is lower case letters, digits, '_', '-' or '.' (at most 64)",
                     "write e.g. 'family: llama'");
  }
  map.family = family.value();

  for (const char* key : {"model_types", "architectures"}) {
    auto it = doc.find(key);
    if (it == doc.end()) continue;
    auto list = get_string_list(ctx, *it, key);
    if (!list.ok()) return list.error();
    (std::string(key) == "model_types" ? map.model_types : map.architectures) = list.value();
  }

  const json& tie = doc["tie_word_embeddings_default"];
  if (!tie.is_boolean()) {
    return ctx.error("tie_word_embeddings_default", "expected true or false, got " + tie.dump(),
                     "it is the config class's default for tie_word_embeddings",
                     "look it up in the model's configuration_*.py (PretrainedConfig: true)");
  }
  map.tie_word_embeddings_default = tie.get<bool>();

  for (const char* key : {"output_head", "input_embedding"}) {
    auto it = doc.find(key);
    if (it == doc.end()) continue;
    auto s = get_string(ctx, *it, key);
    if (!s.ok()) return s.error();
    QF_RETURN_IF_ERROR(check_regex(ctx, s.value(), key));
    (std::string(key) == "output_head" ? map.output_head : map.input_embedding) = s.value();
  }

  if (auto it = doc.find("defaults"); it != doc.end()) {
    if (!it->is_object()) {
      return ctx.error("defaults",
                       "expected a mapping of config keys to expressions, got " + type_name(*it),
                       "write e.g. 'defaults: {head_dim: hidden_size / num_attention_heads}'");
    }
    for (const auto& item : it->items()) {
      const std::string key = yaml_join_key("defaults", item.key());
      if (!is_identifier(item.key())) {
        return ctx.error(key, "'" + item.key() + "' is not a config key name",
                         "names are letters, digits and '_', not starting with a digit");
      }
      auto expr = get_expression(ctx, item.value(), key);
      if (!expr.ok()) return expr.error();
      map.defaults.emplace_back(item.key(), expr.value());
    }
  }

  QF_RETURN_IF_ERROR(parse_modules(ctx, doc["modules"], map));
  return map;
}

}  // namespace model

const char* module_role_name(ModuleRole role) noexcept {
  for (const auto& r : model::kRoleNames) {
    if (r.role == role) return r.name;
  }
  return "other";
}

Result<std::vector<ArchitectureMap>> load_architecture_maps(
    const std::vector<std::filesystem::path>& dirs) {
  namespace fs = std::filesystem;
  auto log = get_logger("host.model");
  std::vector<ArchitectureMap> maps;
  std::map<std::string, fs::path> family_source;  // family -> file that defined it
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return bad_input("architecture map folder '" + dir.string() + "' does not exist",
                       ec ? ec.message() : "it is not a directory",
                       "pass a folder holding <family>.yaml maps (e.g. manifests/architectures)");
    }
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const auto ext = it->path().extension();
      std::error_code file_ec;
      if ((ext == ".yaml" || ext == ".yml") && it->is_regular_file(file_ec)) {
        files.push_back(it->path());
      }
    }
    if (ec) {
      return bad_input("cannot list architecture map folder '" + dir.string() + "'", ec.message(),
                       "check the folder's permissions");
    }
    std::sort(files.begin(), files.end());  // deterministic: directory order is not

    std::map<std::string, fs::path> in_this_dir;  // family -> file
    std::map<std::string, fs::path> claims;       // "model_type:x" / "architecture:X" -> file
    for (const auto& file : files) {
      const std::uintmax_t size = fs::file_size(file, ec);
      if (ec) {
        return bad_input("cannot read architecture map '" + file.string() + "'", ec.message(),
                         "check the file's permissions");
      }
      if (size > model::kMapMaxBytes) {
        return bad_input("architecture map '" + file.string() + "' is too large",
                         "it has " + std::to_string(size) + " bytes; the limit is " +
                             std::to_string(model::kMapMaxBytes),
                         "a map is a few dozen lines; check that this is the right file");
      }
      std::ifstream in(file, std::ios::binary);
      std::ostringstream buffer;
      buffer << in.rdbuf();
      if (!in.good() && !in.eof()) {
        return bad_input("cannot read architecture map '" + file.string() + "'",
                         "reading it failed", "check the file's permissions");
      }
      auto parsed = model::parse_architecture_map(buffer.str(), file);
      if (!parsed.ok()) return parsed.error();
      ArchitectureMap map = std::move(parsed).value();

      if (auto dup = in_this_dir.find(map.family); dup != in_this_dir.end()) {
        return bad_input(
            "architecture family '" + map.family + "' is defined twice in '" + dir.string() + "'",
            "by " + dup->second.filename().string() + " and " + file.filename().string(),
            "keep one file per family");
      }
      in_this_dir.emplace(map.family, file);
      for (const auto& [kind, list] :
           {std::pair<const char*, const std::vector<std::string>*>{"model_type", &map.model_types},
            {"architecture", &map.architectures}}) {
        for (const auto& name : *list) {
          auto [it, fresh] = claims.emplace(std::string(kind) + ":" + name, file);
          if (!fresh) {
            return bad_input(
                std::string(kind) + " '" + name + "' is claimed by two maps in '" + dir.string() +
                    "'",
                "by " + it->second.filename().string() + " and " + file.filename().string(),
                "list it in one map only");
          }
        }
      }
      if (auto earlier = family_source.find(map.family); earlier != family_source.end()) {
        log->debug("architecture map {} ignored: family '{}' already comes from {}", file.string(),
                   map.family, earlier->second.string());
        continue;
      }
      family_source.emplace(map.family, file);
      maps.push_back(std::move(map));
    }
  }
  return maps;
}

Result<const ArchitectureMap*> select_architecture(const std::vector<ArchitectureMap>& maps,
                                                   const nlohmann::json& model_config) {
  auto log = get_logger("host.model");
  std::string model_type;
  if (model_config.is_object()) {
    auto it = model_config.find("model_type");
    if (it != model_config.end() && it->is_string()) model_type = it->get<std::string>();
    if (!model_type.empty()) {
      for (const auto& map : maps) {
        if (std::find(map.model_types.begin(), map.model_types.end(), model_type) !=
            map.model_types.end()) {
          log->debug("architecture map '{}' chosen for model_type '{}'", map.family, model_type);
          return &map;
        }
      }
    }
    auto archs = model_config.find("architectures");
    if (archs != model_config.end() && archs->is_array()) {
      for (const auto& a : *archs) {
        if (!a.is_string()) continue;
        const std::string name = a.get<std::string>();
        for (const auto& map : maps) {
          if (std::find(map.architectures.begin(), map.architectures.end(), name) !=
              map.architectures.end()) {
            log->debug("architecture map '{}' chosen for architecture '{}'", map.family, name);
            return &map;
          }
        }
      }
    }
  }
  for (const auto& map : maps) {
    if (map.family == "generic") {
      log->debug("generic architecture map chosen (model_type '{}')", model_type);
      return &map;
    }
  }
  return bad_input("no architecture map fits this model" +
                       (model_type.empty() ? std::string() : " (model_type '" + model_type + "')"),
                   "no map lists its model_type or architectures, and no 'generic' map is loaded "
                   "(" +
                       std::to_string(maps.size()) + " maps loaded)",
                   "install manifests/architectures/generic.yaml, or point "
                   "QFORGE_ARCHITECTURE_PATH at a folder with a map for this model");
}

}  // namespace qforge
