// Where architecture maps are looked up when the caller names no folder.
//
// Order (the first folder defining a family wins):
//   1. QFORGE_ARCHITECTURE_PATH (colon-separated absolute folders; ignored in setuid/setgid
//      processes, like QFORGE_PLUGIN_PATH),
//   2. <prefix>/share/qforge/architectures next to the library holding this code, then next to
//      the running executable (a relocated install finds its own maps),
//   3. the source tree's manifests/architectures (a build-tree binary uses the maps being edited,
//      not an older install),
//   4. the configured install folder.
// Only existing folders are returned, each once.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <sstream>
#include <system_error>

#include "qforge/logging.hpp"
#include "qforge/model.hpp"

namespace qforge {
namespace {

namespace fs = std::filesystem;

bool process_is_privileged() { return getuid() != geteuid() || getgid() != getegid(); }

void add_existing(std::vector<fs::path>& out, std::set<fs::path>& seen, const fs::path& dir) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return;
  fs::path key = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) key = dir.lexically_normal();
  if (seen.insert(key).second) out.push_back(key);
}

fs::path data_dir_beside(const fs::path& binary) {
  if (binary.empty()) return {};
  return binary.parent_path().parent_path() / "share" / "qforge" / "architectures";
}

fs::path this_library() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&default_architecture_dirs), &info) == 0 ||
      info.dli_fname == nullptr) {
    return {};
  }
  std::error_code ec;
  fs::path p = fs::canonical(info.dli_fname, ec);
  return ec ? fs::path() : p;
}

fs::path this_executable() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : p;
}

}  // namespace

std::vector<std::filesystem::path> default_architecture_dirs() {
  auto log = get_logger("host.model");
  std::vector<fs::path> out;
  std::set<fs::path> seen;
  const char* env = std::getenv("QFORGE_ARCHITECTURE_PATH");
  if (env != nullptr && env[0] != '\0') {
    if (process_is_privileged()) {
      log->warn("QFORGE_ARCHITECTURE_PATH ignored: the process runs setuid/setgid");
    } else {
      std::stringstream ss(env);
      std::string entry;
      while (std::getline(ss, entry, ':')) {
        if (entry.empty()) continue;  // an empty entry would mean the current directory
        if (fs::path(entry).is_relative()) {
          log->warn("QFORGE_ARCHITECTURE_PATH entry '{}' skipped: only absolute paths are searched",
                    entry);
          continue;
        }
        add_existing(out, seen, entry);
      }
    }
  }
  add_existing(out, seen, data_dir_beside(this_library()));
  add_existing(out, seen, data_dir_beside(this_executable()));
  add_existing(out, seen, QFORGE_SOURCE_ARCH_DIR);
  add_existing(out, seen, QFORGE_INSTALL_ARCH_DIR);
  return out;
}

}  // namespace qforge
