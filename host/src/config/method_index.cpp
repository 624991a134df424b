#include "config/method_index.hpp"

#include <algorithm>
#include <utility>

namespace qforge {
namespace {

void add_unique(std::vector<std::string>& into, const std::vector<std::string>& from) {
  for (const auto& name : from) {
    if (std::find(into.begin(), into.end(), name) == into.end()) into.push_back(name);
  }
}

}  // namespace

MethodIndex::MethodIndex(const std::vector<MethodCatalogEntry>& catalog) {
  for (const MethodCatalogEntry& entry : catalog) {
    auto [it, inserted] = methods_.emplace(entry.quant_method, entry);
    if (!inserted) {
      // Two plugins serve the same method: a user may override what either allows, and the
      // key check only applies when every plugin declares its keys.
      MethodCatalogEntry& merged = it->second;
      add_unique(merged.aliases, entry.aliases);
      add_unique(merged.loading_attributes, entry.loading_attributes);
      if (merged.known_keys.empty() || entry.known_keys.empty()) {
        merged.known_keys.clear();
      } else {
        add_unique(merged.known_keys, entry.known_keys);
      }
      for (const auto& preset : entry.presets) merged.presets.insert(preset);
    }
  }
  // Canonical names win over aliases, and the first declaration of an alias or preset wins
  // (catalog order is search-path order).
  for (const MethodCatalogEntry& entry : catalog) {
    for (const auto& alias : entry.aliases) {
      if (methods_.count(alias) == 0) aliases_.emplace(alias, entry.quant_method);
    }
    for (const auto& [name, config] : entry.presets) {
      presets_.emplace(name, std::make_pair(entry.quant_method, config));
    }
  }
}

const MethodCatalogEntry* MethodIndex::find(const std::string& canonical) const {
  auto it = methods_.find(canonical);
  return it == methods_.end() ? nullptr : &it->second;
}

std::optional<std::string> MethodIndex::canonical(const std::string& name) const {
  if (methods_.count(name) != 0) return name;
  auto it = aliases_.find(name);
  if (it != aliases_.end()) return it->second;
  return std::nullopt;
}

const nlohmann::json* MethodIndex::preset(const std::string& name, std::string* owner) const {
  auto it = presets_.find(name);
  if (it == presets_.end()) return nullptr;
  if (owner != nullptr) *owner = it->second.first;
  return &it->second.second;
}

std::vector<std::string> MethodIndex::methods() const {
  std::vector<std::string> out;
  for (const auto& m : methods_) out.push_back(m.first);
  return out;
}

std::vector<std::string> MethodIndex::aliases() const {
  std::vector<std::string> out;
  for (const auto& a : aliases_) out.push_back(a.first);
  return out;
}

std::vector<std::string> MethodIndex::presets() const {
  std::vector<std::string> out;
  for (const auto& p : presets_) out.push_back(p.first);
  return out;
}

std::string format_name_list(const std::vector<std::string>& names) {
  std::string out = "[";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  return out + "]";
}

}  // namespace qforge
