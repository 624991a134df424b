// The plugin search path and manifest discovery. Private to host/src/plugins.
#pragma once

#include <filesystem>
#include <vector>

#include "qforge/host.hpp"

namespace qforge::plugins {

// --plugin-dir folders, then QFORGE_PLUGIN_PATH (unless privileged), then the build-tree and
// install defaults. Relative entries of the environment variable and empty entries (which
// would mean the current directory) are skipped; duplicates keep their first position.
std::vector<std::filesystem::path> build_search_path(const HostOptions& options);

// Reads every *.yaml / *.yml manifest in each folder, folders in order and files in name order.
// Broken manifests become kFailed records; later manifests with an id already seen become
// kShadowed, naming the winner.
std::vector<PluginRecord> discover_plugins(const std::vector<std::filesystem::path>& search_path);

}  // namespace qforge::plugins
