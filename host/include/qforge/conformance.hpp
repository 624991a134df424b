// Plugin conformance check: what `qforge plugins check MANIFEST` runs, and what a vendor (or an
// embedder vetting a plugin before deploying it) can run from C++. It loads one plugin in an
// isolated Host, negotiates, and calls every hook of every method on small synthetic inputs,
// checking statuses, output names/dtypes/shapes against what the method declares, finiteness of
// dequantized values, and that no hook writes to stdout.
//
// Thread-safety: check_plugin temporarily redirects the process's fd 1 around each plugin call
// (that is how it sees stray stdout writes), so run it when no other thread writes to stdout.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/environment.hpp"
#include "qforge/manifest.hpp"

namespace qforge {

struct CheckOptions {
  // Environment handed to validate_environment; probed when empty.
  std::optional<Environment> environment;
  // Seed of the synthetic weights, so a failing run can be repeated exactly.
  uint64_t seed = 0x5EED;
  // Shape of the synthetic linear layer: weight [out_features, in_features], bias [out_features].
  int64_t out_features = 32;
  int64_t in_features = 64;
};

enum class CheckResult {
  kPass,
  kFail,
  kNotImplemented,  // the plugin answered UNIMPLEMENTED where that is allowed: a warning
  kSkipped,         // not run because an earlier step it depends on did not succeed
};
const char* check_result_name(CheckResult result) noexcept;  // "pass", "fail", ...

struct CheckItem {
  std::string name;  // "load", "bitsandbytes_4bit: quantize"
  CheckResult result = CheckResult::kPass;
  std::string detail;  // what was seen; for a failure: what / why / fix
};

struct CheckReport {
  std::filesystem::path manifest;
  std::string plugin_id;
  std::string plugin_version;  // as the library reports it (empty when it never loaded)
  std::vector<CheckItem> items;

  int count(CheckResult result) const;
  bool passed() const { return count(CheckResult::kFail) == 0; }
  // {"manifest", "plugin", "version", "passed", "summary": {"pass":n,...},
  //  "checks": [{"name","result","detail"}]}
  nlohmann::json to_json() const;
};

// Runs the conformance check on the plugin described by `manifest`. The plugin is loaded in a
// Host of its own that searches no folders, so other installed plugins cannot interfere.
// Throws qforge::Error when the manifest itself cannot be read or parsed (exit code 4); every
// later problem (load, negotiation, hook statuses, outputs) is a failed item of the report.
CheckReport check_plugin(const std::filesystem::path& manifest, const CheckOptions& options = {});

// The smallest config that instantiates `method`: {"quant_method": name} merged with the
// method's first preset (preset keys win, so a preset may spell the HF quant_method, e.g.
// "bitsandbytes"). Used by the conformance check and by `qforge doctor`'s selection table.
nlohmann::json minimal_method_config(const MethodManifest& method);

}  // namespace qforge
