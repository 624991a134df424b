// Module targeting: grouping a checkpoint's tensors into modules with an architecture map,
// filling their dimensions, checking dense weights against the map (CF5), and marking the
// modules transformers' get_keys_to_not_convert would skip by default (FORMATS.md §1.4).
//
// Rules (docs/architecture-maps.md has the long form):
// * A tensor belongs to the longest proper prefix of its name (split at dots, never ending in a
//   "weight" component) that fully matches one of the map's patterns, so pre-quantized tensors
//   ("q_proj.weight.absmax", "q_proj.SCB", "q_proj.qzeros") land in their module.
// * Tensors no pattern claims: "X.weight", "X.weight.*", "X.qweight" and "X.W_q" make X a module
//   whose role comes from name heuristics (embedding, norm) or its weight (2-D: linear, else
//   other); remaining tensors join the longest such module prefix, or stay loose (buffers).
// * transformers also skips "the last parameter's module"; safetensors keeps no module order,
//   so the map's output head stands in for it.
#include <qforge/qf_plugin.h>

#include <algorithm>
#include <map>
#include <regex>
#include <unordered_map>

#include "model/model_internal.hpp"
#include "qforge/logging.hpp"

namespace qforge {
namespace model {
namespace {

using nlohmann::json;

struct CompiledMap {
  std::vector<std::regex> patterns;
  std::optional<std::regex> head;
  std::optional<std::regex> embedding;
};

Result<std::regex> compile_regex(const ArchitectureMap& map, const std::string& pattern,
                                 const std::string& key) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return bad_input("architecture map '" + map.family + "' (" + map.source.string() +
                         "): bad regular expression '" + pattern + "' in " + key,
                     std::string("std::regex (ECMAScript) rejects it: ") + e.what(),
                     "fix the pattern in the map");
  }
}

Result<CompiledMap> compile(const ArchitectureMap& map) {
  CompiledMap out;
  for (size_t i = 0; i < map.modules.size(); ++i) {
    auto re = compile_regex(map, map.modules[i].regex, "modules[" + std::to_string(i) + "]");
    if (!re.ok()) return re.error();
    out.patterns.push_back(std::move(re).value());
  }
  if (map.output_head) {
    auto re = compile_regex(map, *map.output_head, "output_head");
    if (!re.ok()) return re.error();
    out.head = std::move(re).value();
  }
  if (map.input_embedding) {
    auto re = compile_regex(map, *map.input_embedding, "input_embedding");
    if (!re.ok()) return re.error();
    out.embedding = std::move(re).value();
  }
  return out;
}

std::vector<std::string> split_name(const std::string& name) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

// Proper prefixes of a dotted name that may name a module, longest first. A prefix ending in a
// "weight" component is the parameter whose quantization state follows ("weight.absmax").
std::vector<std::string> module_prefixes(const std::string& name) {
  std::vector<size_t> dots;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '.') dots.push_back(i);
  }
  std::vector<std::string> out;
  for (size_t k = dots.size(); k >= 1; --k) {
    const size_t end = dots[k - 1];
    const size_t begin = k >= 2 ? dots[k - 2] + 1 : 0;
    if (end == 0 || name.compare(begin, end - begin, "weight") == 0) continue;
    out.push_back(name.substr(0, end));
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string last_component(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// Floating dtypes whose 2-D shape is the layer's real [out, in]; packed quantized storage
// (bnb's uint8 [n, 1], int32 qweight) is not.
bool stores_real_shape(DLDataType dtype) {
  return dtype.code == kDLFloat || dtype.code == kDLBfloat || dtype.code == QF_DL_FLOAT8_E4M3FN ||
         dtype.code == QF_DL_FLOAT8_E5M2;
}

bool has_dims(ModuleRole role) {
  return role == ModuleRole::kLinear || role == ModuleRole::kConv1D ||
         role == ModuleRole::kOutputHead || role == ModuleRole::kOther;
}

// "lm_head" for 'lm_head', "cls.predictions.decoder" for 'cls\.predictions\.decoder'; other
// regexes are shown as written.
std::string regex_display(const std::string& regex) {
  std::string out;
  for (size_t i = 0; i < regex.size(); ++i) {
    const char c = regex[i];
    if (c == '\\' && i + 1 < regex.size() && regex[i + 1] == '.') {
      out += '.';
      ++i;
    } else if (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_') {
      out += c;
    } else {
      return regex;
    }
  }
  return out;
}

// A config.json naming only base-model classes (LlamaModel, BertModel) describes a model
// without an output head, so nothing is tied to its input embedding.
bool is_base_model_config(const json& config) {
  auto it = config.find("architectures");
  if (it == config.end() || !it->is_array() || it->empty()) return false;
  for (const auto& a : *it) {
    if (!a.is_string()) return false;
    const std::string name = a.get<std::string>();
    const std::string suffix = "Model";
    const bool ends_model = name.size() >= suffix.size() &&
                            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (!ends_model || name.find("Head") != std::string::npos) return false;
  }
  return true;
}

Result<bool> tie_word_embeddings(const ArchitectureMap& map, const json& config) {
  auto it = config.find("tie_word_embeddings");
  if (it == config.end() || it->is_null()) return map.tie_word_embeddings_default;
  if (!it->is_boolean()) {
    return bad_input("config.json key 'tie_word_embeddings' is not a boolean",
                     "it is " + it->dump(), "write true or false");
  }
  return it->get<bool>();
}

struct PendingModule {
  int pattern = -1;  // index into map.modules; -1: found by the fallback rules
  std::vector<const TensorInfo*> tensors;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Fills in/out features; checks a dense weight against the pattern's expressions (CF5).
Status fill_dimensions(const ArchitectureMap& map, const json& config, const ModulePattern* pattern,
                       ModuleEntry& entry) {
  const bool dense =
      entry.weight && entry.weight_shape.size() == 2 && stores_real_shape(entry.weight_dtype);
  if (dense) {
    const bool transposed = entry.role == ModuleRole::kConv1D;
    entry.out_features = entry.weight_shape[transposed ? 1 : 0];
    entry.in_features = entry.weight_shape[transposed ? 0 : 1];
  }
  if (pattern == nullptr || !has_dims(entry.role)) return ok_status();

  struct Dim {
    const char* label;
    const std::optional<std::string>* expression;
    int64_t* value;
  };
  std::string mismatch, expected;
  std::vector<std::string> trace;
  for (const Dim& d : {Dim{"out_features", &pattern->out_features, &entry.out_features},
                       Dim{"in_features", &pattern->in_features, &entry.in_features}}) {
    if (!*d.expression) continue;
    std::vector<std::string> keys;
    auto value = evaluate_expression(**d.expression, config, map.defaults, &keys);
    if (!value.ok()) {
      const Error& e = value.error();
      return Error(
          e.code(), e.exit_code(),
          "module '" + entry.name + "' (" + map.family + " map, " + d.label + "): " + e.summary(),
          e.why(), e.fix());
    }
    for (const auto& k : keys) {
      if (std::find(trace.begin(), trace.end(), k) == trace.end()) trace.push_back(k);
    }
    expected += std::string(expected.empty() ? "" : ", ") + d.label + " " +
                std::to_string(value.value()) + " = " + **d.expression;
    if (!dense) {
      *d.value = value.value();
    } else if (*d.value != value.value()) {
      mismatch += std::string(mismatch.empty() ? "" : ", ") + d.label + " is " +
                  std::to_string(*d.value) + ", expected " + std::to_string(value.value());
    }
  }
  if (mismatch.empty()) return ok_status();
  std::string keys;
  for (const auto& k : trace) keys += (keys.empty() ? "" : ", ") + k;
  const bool transposed = entry.role == ModuleRole::kConv1D;
  return bad_input(
      "module '" + entry.name + "' does not have the shape the " + map.family +
          " map expects: " + mismatch,
      "its weight is stored as " + shape_text(entry.weight_shape) + " (" +
          (transposed ? "Conv1D: [in, out]" : "[out, in]") + "); the map (" + map.source.string() +
          ") expects " + expected + " (config: " + keys + ")",
      "check that config.json belongs to these weights; if this model is a variant the map does "
      "not describe, fix or override the map");
}

}  // namespace

std::string linear_tag(const std::string& module_name) {
  std::string out;
  for (const auto& part : split_name(module_name)) {
    if (part == "model" || part == "layers") continue;
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(),
                                                      [](char c) { return c >= '0' && c <= '9'; });
    if (numeric) continue;
    out += (out.empty() ? "" : ".") + part;
  }
  return out;
}

bool looks_like_embedding(const std::string& module_name) {
  const std::string last = lower(last_component(module_name));
  const bool ends_emb = last.size() >= 3 && last.compare(last.size() - 3, 3, "emb") == 0;
  return last.find("embed") != std::string::npos || ends_emb || last == "wte" || last == "wpe" ||
         last == "shared";
}

bool looks_like_norm(const std::string& module_name) {
  const std::string last = lower(last_component(module_name));
  if (last.find("norm") != std::string::npos) return true;
  // GPT-2 / GPT-J style: ln_1, ln_f, ln_cross_attn, ln1, ln.
  if (last.compare(0, 2, "ln") != 0) return false;
  return last.size() == 2 || last[2] == '_' || std::isdigit(static_cast<unsigned char>(last[2]));
}

Result<ModelLayout> classify_modules(const ArchitectureMap& map,
                                     const std::vector<TensorInfo>& tensors,
                                     const json& config_in) {
  static const json kEmpty = json::object();
  const json& config = config_in.is_object() ? config_in : kEmpty;
  auto compiled = compile(map);
  if (!compiled.ok()) return compiled.error();
  const CompiledMap& re = compiled.value();

  std::vector<const TensorInfo*> sorted;
  sorted.reserve(tensors.size());
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->name < b->name; });
  std::unordered_map<std::string, const TensorInfo*> by_name;
  for (const TensorInfo* t : sorted) {
    if (!by_name.emplace(t->name, t).second) {
      return bad_input("tensor '" + t->name + "' appears twice", "tensor names are unique",
                       "fix the checkpoint");
    }
  }

  // Many tensors share prefixes; std::regex is slow, so each prefix is matched once.
  std::unordered_map<std::string, int> memo;
  auto pattern_of = [&](const std::string& prefix) {
    auto it = memo.find(prefix);
    if (it != memo.end()) return it->second;
    int found = -1;
    for (size_t i = 0; i < re.patterns.size() && found < 0; ++i) {
      if (std::regex_match(prefix, re.patterns[i])) found = static_cast<int>(i);
    }
    memo.emplace(prefix, found);
    return found;
  };

  std::map<std::string, PendingModule> modules;  // sorted by name
  std::vector<const TensorInfo*> unclaimed;
  for (const TensorInfo* t : sorted) {
    bool claimed = false;
    for (const auto& prefix : module_prefixes(t->name)) {
      const int idx = pattern_of(prefix);
      if (idx < 0) continue;
      PendingModule& m = modules[prefix];
      m.pattern = idx;
      m.tensors.push_back(t);
      claimed = true;
      break;
    }
    if (!claimed) unclaimed.push_back(t);
  }

  // Fallback modules: what carries a weight (dense or quantized) but no pattern names.
  for (const TensorInfo* t : unclaimed) {
    const std::vector<std::string> parts = split_name(t->name);
    size_t module_parts = 0;
    for (size_t j = 1; j < parts.size(); ++j) {
      if (parts[j] == "weight") {
        module_parts = j;
        break;
      }
    }
    if (module_parts == 0 && parts.size() >= 2 &&
        (parts.back() == "qweight" || parts.back() == "W_q")) {
      module_parts = parts.size() - 1;
    }
    if (module_parts == 0) continue;
    std::string name = parts[0];
    for (size_t j = 1; j < module_parts; ++j) name += "." + parts[j];
    if (!name.empty() && modules.find(name) == modules.end()) modules[name];  // pattern -1
  }

  ModelLayout layout;
  layout.map = &map;
  for (const TensorInfo* t : unclaimed) {
    bool attached = false;
    for (const auto& prefix : module_prefixes(t->name)) {
      auto it = modules.find(prefix);
      if (it == modules.end() || it->second.pattern >= 0) continue;
      it->second.tensors.push_back(t);
      attached = true;
      break;
    }
    if (!attached) layout.loose_tensors.push_back(t->name);
  }

  for (auto& [name, pending] : modules) {
    ModuleEntry entry;
    entry.name = name;
    entry.family = map.family;
    entry.tag = linear_tag(name);
    std::sort(pending.tensors.begin(), pending.tensors.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->name < b->name; });
    bool quantized_weight = false;
    for (const TensorInfo* t : pending.tensors) {
      entry.tensors.push_back(t->name);
      const std::string rest = t->name.substr(name.size() + 1);
      if (rest == "weight") {
        entry.weight = t->name;
        entry.weight_shape = t->shape;
        entry.weight_dtype = t->dtype;
      } else if (rest == "bias") {
        entry.bias = t->name;
      } else if (rest == "qweight" || rest == "W_q") {
        quantized_weight = true;
      }
    }
    const ModulePattern* pattern = pending.pattern >= 0 ? &map.modules[pending.pattern] : nullptr;
    if (pattern != nullptr) {
      entry.role = pattern->role;
    } else if (re.head && std::regex_match(name, *re.head)) {
      entry.role = ModuleRole::kOutputHead;
    } else if (looks_like_embedding(name)) {
      entry.role = ModuleRole::kEmbedding;
    } else if (looks_like_norm(name)) {
      entry.role = ModuleRole::kNorm;
    } else if ((entry.weight && entry.weight_shape.size() == 2) || quantized_weight) {
      entry.role = ModuleRole::kLinear;
    } else {
      entry.role = ModuleRole::kOther;
    }
    QF_RETURN_IF_ERROR(fill_dimensions(map, config, pattern, entry));
    layout.modules.push_back(std::move(entry));
  }

  // Default skips: the output head, and with tied embeddings both ends of the tie
  // (transformers v5: all_tied_weights_keys keys and values, plus get_output_embeddings()).
  auto tie = tie_word_embeddings(map, config);
  if (!tie.ok()) return tie.error();
  std::vector<ModuleEntry*> heads, embeddings;
  for (auto& m : layout.modules) {
    if (m.role == ModuleRole::kOutputHead || (re.head && std::regex_match(m.name, *re.head))) {
      heads.push_back(&m);
    } else if (re.embedding && std::regex_match(m.name, *re.embedding)) {
      embeddings.push_back(&m);
    }
  }
  const bool tied = tie.value() && map.output_head && !embeddings.empty() &&
                    (!heads.empty() || !is_base_model_config(config));
  const std::string head_name = !heads.empty()    ? heads.front()->name
                                : map.output_head ? regex_display(*map.output_head)
                                                  : std::string("output head");
  const std::string embedding_name = !embeddings.empty() ? embeddings.front()->name : "";
  for (ModuleEntry* m : heads) {
    m->default_skip = "output head (" + m->name + ")";
    if (tied) m->default_skip += ", tied to " + embedding_name;
  }
  if (tied) {
    for (ModuleEntry* m : embeddings) {
      m->default_skip = "input embedding (" + m->name + "), tied to " + head_name;
    }
    layout.tied_weights.push_back(head_name);
  }

  get_logger("host.model")
      ->debug("{} map: {} modules, {} loose tensors, tie_word_embeddings={}{}", map.family,
              layout.modules.size(), layout.loose_tensors.size(), tie.value(),
              tied ? " (" + head_name + " tied to " + embedding_name + ")" : "");
  return layout;
}

}  // namespace model

nlohmann::json ModuleEntry::extra() const {
  nlohmann::json j = {{"role", module_role_name(role)}, {"tag", tag}, {"family", family}};
  if (!default_skip.empty()) j["default_skip"] = default_skip;
  return j;
}

Result<ModelLayout> classify_modules(const ArchitectureMap& map, const Checkpoint& checkpoint) {
  return model::classify_modules(map, checkpoint.tensors(), checkpoint.config());
}

}  // namespace qforge
