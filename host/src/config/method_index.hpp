// The installed methods, indexed for config resolution: canonical names, aliases and presets.
// Several plugins may serve one quant_method; their catalog entries are merged here.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/config.hpp"

namespace qforge {

// The HF spelling shared by both bitsandbytes methods, and the two dispatch keys (FORMATS.md
// §1.5). These are the only method names the generic resolver knows.
inline constexpr const char* kBnbFamily = "bitsandbytes";
inline constexpr const char* kBnb4bit = "bitsandbytes_4bit";
inline constexpr const char* kBnb8bit = "bitsandbytes_8bit";

class MethodIndex {
 public:
  explicit MethodIndex(const std::vector<MethodCatalogEntry>& catalog);

  // The merged entry of a canonical method, or nullptr.
  const MethodCatalogEntry* find(const std::string& canonical) const;
  // A canonical name or an alias -> the canonical name.
  std::optional<std::string> canonical(const std::string& name) const;
  // A preset's config and the canonical method that declares it, or nullptr.
  const nlohmann::json* preset(const std::string& name, std::string* owner) const;

  // Sorted lists, for error messages.
  std::vector<std::string> methods() const;
  std::vector<std::string> aliases() const;
  std::vector<std::string> presets() const;

 private:
  std::map<std::string, MethodCatalogEntry> methods_;
  std::map<std::string, std::string> aliases_;                             // alias -> canonical
  std::map<std::string, std::pair<std::string, nlohmann::json>> presets_;  // -> (owner, config)
};

// "[a, b, c]"
std::string format_name_list(const std::vector<std::string>& names);

}  // namespace qforge
