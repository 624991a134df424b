// The property the manifest fuzzer checks, shared by the libFuzzer target (manifest_fuzz.cpp) and
// the corpus replay test (fuzz_replay_test.cpp): for any bytes, parse_manifest_text
// returns (a manifest or a bad-input error), never throws, and what it returns is well formed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "qforge/manifest.hpp"

namespace qforge::fuzz {

inline const char* const kFuzzManifestFolder = "/fuzz/plugins/acme";

// Returns nullptr when the property holds, else what broke it.
inline const char* check_manifest_input(const uint8_t* data, std::size_t size) {
  try {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const std::filesystem::path folder(kFuzzManifestFolder);
    auto result = parse_manifest_text(text, "fuzz.yaml", folder);
    if (!result.ok()) {
      const Error& e = result.error();
      // Anything but bad input means an exception escaped validation: a qforge bug.
      if (e.exit_code() != ExitCode::kBadInput) return "error is not bad input (exit code 4)";
      if (e.summary().compare(0, 10, "fuzz.yaml:") != 0) return "error does not name the file";
      if (e.why().empty() || e.fix().empty()) return "error lacks why or fix";
      // doctor --json prints errors as JSON: every message must be valid UTF-8.
      (void)nlohmann::json({e.summary(), e.why(), e.fix()}).dump();
      return nullptr;
    }
    const PluginManifest& m = result.value();
    if (m.schema != kManifestSchemaVersion) return "accepted a foreign schema version";
    if (m.id.empty() || m.methods.empty()) return "accepted a manifest without id or methods";
    // The library must stay inside the manifest's folder.
    const auto rel = m.library_path.lexically_relative(folder);
    if (rel.empty() || *rel.begin() == "..") return "library_path escapes the folder";
    for (const MethodManifest& method : m.methods) {
      if (method.devices.empty()) return "accepted a method without devices";
      for (const auto& [name, preset] : method.presets) {
        if (!preset.is_object()) return "preset is not a JSON object";
        (void)preset.dump();  // throws on invalid UTF-8
      }
    }
    if (!m.vendor_extras.is_object()) return "vendor_extras is not a JSON object";
    (void)m.vendor_extras.dump();
    return nullptr;
  } catch (const std::exception&) {
    return "exception escaped parse_manifest_text or its result";
  } catch (...) {
    return "unknown exception escaped parse_manifest_text";
  }
}

}  // namespace qforge::fuzz
