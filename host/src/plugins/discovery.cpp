#include "plugins/discovery.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "qforge/logging.hpp"

namespace qforge::plugins {
namespace fs = std::filesystem;

namespace {

// `<prefix>/bin/exe` -> `<prefix>/<libdir>/qforge/plugins`: a relocated install (a tarball
// unpacked anywhere, an application bundling its plugins) finds its own plugins without an env var.
fs::path plugin_dir_beside_executable() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec || exe.empty()) return {};
  return exe.parent_path().parent_path() / QFORGE_INSTALL_PLUGIN_RELDIR;
}

bool process_is_privileged() { return getuid() != geteuid() || getgid() != getegid(); }

void add_unique(std::vector<fs::path>& out, std::set<fs::path>& seen, const fs::path& dir) {
  std::error_code ec;
  fs::path key = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) key = dir.lexically_normal();
  if (seen.insert(key).second) out.push_back(key);
}

}  // namespace

std::vector<fs::path> build_search_path(const HostOptions& options) {
  auto log = get_logger("host.loader");
  std::vector<fs::path> out;
  std::set<fs::path> seen;
  for (const auto& dir : options.plugin_dirs) add_unique(out, seen, dir);
  if (options.use_env_path) {
    const char* env = std::getenv("QFORGE_PLUGIN_PATH");
    if (env != nullptr && env[0] != '\0') {
      if (process_is_privileged()) {
        log->warn("QFORGE_PLUGIN_PATH ignored: the process runs setuid/setgid");
      } else {
        std::stringstream ss(env);
        std::string entry;
        while (std::getline(ss, entry, ':')) {
          if (entry.empty()) continue;  // an empty entry would mean the current directory
          if (fs::path(entry).is_relative()) {
            log->warn("QFORGE_PLUGIN_PATH entry '{}' skipped: only absolute paths are searched",
                      entry);
            continue;
          }
          add_unique(out, seen, entry);
        }
      }
    }
  }
  if (options.use_default_dirs) {
    add_unique(out, seen, QFORGE_BUILD_PLUGIN_DIR);
    const fs::path beside = plugin_dir_beside_executable();
    if (!beside.empty()) add_unique(out, seen, beside);
    add_unique(out, seen, QFORGE_INSTALL_PLUGIN_DIR);
  }
  return out;
}

std::vector<PluginRecord> discover_plugins(const std::vector<fs::path>& search_path) {
  auto log = get_logger("host.loader");
  std::vector<PluginRecord> records;
  std::map<std::string, fs::path> first_by_id;
  for (const auto& dir : search_path) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      log->debug("plugin folder {} does not exist; skipped", dir.string());
      continue;
    }
    std::vector<fs::path> manifests;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const auto ext = entry.path().extension();
      if ((ext == ".yaml" || ext == ".yml") && entry.is_regular_file(ec)) {
        manifests.push_back(entry.path());
      }
    }
    if (ec) {
      log->warn("cannot list plugin folder {}: {}", dir.string(), ec.message());
      continue;
    }
    std::sort(manifests.begin(), manifests.end());
    struct stat dir_stat {};
    const bool world_writable = stat(dir.c_str(), &dir_stat) == 0 && (dir_stat.st_mode & S_IWOTH);
    for (const auto& path : manifests) {
      PluginRecord record;
      record.manifest_path = path;
      if (world_writable) {
        record.state = PluginState::kFailed;
        record.failure = bad_input("plugin folder " + dir.string() + " is world-writable",
                                   "anyone could drop a manifest or library there (mode " +
                                       std::to_string(dir_stat.st_mode & 07777) + ")",
                                   "chmod o-w " + dir.string());
        records.push_back(std::move(record));
        continue;
      }
      auto manifest = load_manifest(path);
      if (!manifest.ok()) {
        record.state = PluginState::kFailed;
        record.failure = manifest.error();
        log->warn("manifest {} rejected: {}", path.string(), manifest.error().to_string());
        records.push_back(std::move(record));
        continue;
      }
      record.manifest = std::move(manifest).value();
      const std::string& id = record.manifest->id;
      if (auto it = first_by_id.find(id); it != first_by_id.end()) {
        record.state = PluginState::kShadowed;
        record.shadowed_by = it->second;
        log->warn("plugin '{}' in {} is shadowed by {} (first in search order wins)", id,
                  path.string(), it->second.string());
      } else {
        first_by_id.emplace(id, path);
      }
      records.push_back(std::move(record));
    }
  }
  return records;
}

}  // namespace qforge::plugins
