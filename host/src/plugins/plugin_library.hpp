// Loading one plugin library safely: manifest ABI check, path containment, permission checks,
// sha256 pinning on the opened descriptor, ELF and entry-symbol inspection before dlopen,
// rtld_now | rtld_local, negotiation, and the runtime method list against the manifest.
// Private to host/src/plugins.
#pragma once

#include <qforge/qf_plugin.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "qforge/error.hpp"
#include "qforge/manifest.hpp"

namespace qforge::plugins {

// A loaded plugin library. Process-wide and never unloaded: unloading races with static
// destructors and with threads a plugin may still own (ARCHITECTURE.md "Loading").
struct LoadedPlugin {
  std::string id;
  std::string runtime_version;
  uint32_t negotiated_abi = 0;
  qf_plugin_info info{};
  std::map<std::string, const qf_method*> methods;  // by quant_method

  // init runs lazily before the first create; shutdown when the last user releases it.
  Status acquire();
  void release();

 private:
  std::mutex mutex_;
  int users_ = 0;
};

// Loads (or finds already loaded) the library a manifest names. Every failure names the
// manifest, the library and the cause; exit code 5 (plugin failure).
Result<std::shared_ptr<LoadedPlugin>> load_plugin_library(const PluginManifest& manifest);

// sha256 of an open file descriptor's whole content, lowercase hex.
Result<std::string> sha256_of_fd(int fd, const std::string& path_for_errors);

}  // namespace qforge::plugins
