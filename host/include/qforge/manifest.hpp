// Plugin manifests: the YAML a plugin ships beside its library, read and fully validated before
// any plugin code is loaded. Schema: docs/manifest.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/error.hpp"

namespace qforge {

inline constexpr int kManifestSchemaVersion = 1;
inline constexpr std::uintmax_t kManifestMaxBytes = 1 << 20;  // 1 MiB: a manifest is small

struct DeviceRequirement {
  std::string type;                 // "cpu", "cuda", "rocm"
  std::optional<int> min_cc_major;  // cuda: minimum compute capability, e.g. 7.5 -> (7, 5)
  std::optional<int> min_cc_minor;
  std::vector<std::string> gcn_archs;     // rocm: allowed gfx archs ({} = any)
  std::vector<std::string> cpu_features;  // cpu: required features ({} = none)
};

struct MethodManifest {
  std::string quant_method;
  std::vector<std::string> aliases;
  std::map<std::string, nlohmann::json> presets;  // preset name -> config object
  std::vector<DeviceRequirement> devices;         // at least one
  int priority = 0;                               // higher wins
  bool requires_calibration = false;
  // What quantize needs from the calibration pass (docs/manifest.md, docs/calibration.md):
  // "hessian" (GPTQ: each linear's H) or "activation_scaling" (AWQ: the host searches scales
  // and clipping with the plugin's own quantize and folds them, calibrated_quantize.hpp).
  std::string calibration = "hessian";
  std::vector<std::string> loading_attributes;
  std::vector<std::string> config_keys;  // keys the method understands ({} = any)
  // `verify:` block: thresholds of `qforge verify` checks by check id (docs/verify.md); they
  // replace the host's defaults for this method, and --threshold replaces them.
  std::map<std::string, double> verify_thresholds;
};

struct PluginManifest {
  std::filesystem::path path;  // the manifest file itself
  int schema = 0;
  std::string id;  // [a-z0-9_.-]+, unique across the search path
  std::string name;
  std::string version;
  std::string vendor;
  std::string license;
  std::string description;
  std::filesystem::path library;       // as written (relative to the manifest's folder)
  std::filesystem::path library_path;  // resolved, lexically normal, inside the folder
  std::optional<std::string> sha256;   // lowercase hex, 64 chars
  uint32_t abi_major = 0;
  uint32_t abi_min_minor = 0;
  std::optional<std::string> requires_libtorch;  // in-tree plugins linking LibTorch
  std::vector<MethodManifest> methods;
  nlohmann::json vendor_extras = nlohmann::json::object();  // x_<vendor>_* keys
};

// Parses and validates manifest text. `source` names the file in every error ("bnb.yaml: field
// 'methods[0].priority': expected an integer, got 'high'"). Rejects malformed YAML, missing,
// unknown, duplicate or mistyped keys, YAML aliases/anchors and tags, and oversized input.
// The library path is resolved against `folder` and must stay inside it.
Result<PluginManifest> parse_manifest_text(const std::string& text, const std::string& source,
                                           const std::filesystem::path& folder);

// Reads `path` (size-capped, regular file, not world-writable) and parses it.
Result<PluginManifest> load_manifest(const std::filesystem::path& path);

}  // namespace qforge
