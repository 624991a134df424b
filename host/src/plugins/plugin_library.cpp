#include "plugins/plugin_library.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include "plugins/host_services.hpp"
#include "qforge/host.hpp"
#include "qforge/logging.hpp"

namespace qforge::plugins {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMinMethodSize = offsetof(qf_method, postprocess) + sizeof(void*);

std::string abi_string(uint32_t v) {
  return std::to_string(QF_ABI_VERSION_MAJOR(v)) + "." + std::to_string(QF_ABI_VERSION_MINOR(v));
}

struct LoadContext {
  const PluginManifest& manifest;
  std::string prefix() const {
    return "plugin '" + manifest.id + "' (" + manifest.path.string() + ")";
  }
  Error fail(const std::string& what, const std::string& why, const std::string& fix) const {
    return plugin_error(prefix() + ": " + what, why, fix);
  }
};

// Loaded libraries by (device, inode), so two manifests (or two Hosts) naming one file share it.
struct LibraryKey {
  dev_t dev;
  ino_t ino;
  bool operator<(const LibraryKey& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

struct Registry {
  std::mutex mutex;
  std::map<LibraryKey, std::shared_ptr<LoadedPlugin>> loaded;
  // Kept for the life of the process: never unloaded (see LoadedPlugin).
  std::vector<std::shared_ptr<boost::dll::shared_library>> libraries;
};

Registry& registry() {
  static auto* r = new Registry();  // never destroyed: plugins may run at static-destruction time
  return *r;
}

bool is_within(const fs::path& child, const fs::path& parent) {
  auto c = child.begin();
  for (auto p = parent.begin(); p != parent.end(); ++p, ++c) {
    if (c == child.end() || *c != *p) return false;
  }
  return true;
}

Status check_elf_header(int fd, const LoadContext& lc) {
  Elf64_Ehdr header{};
  const ssize_t n = pread(fd, &header, sizeof(header), 0);
  if (n < static_cast<ssize_t>(EI_NIDENT) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) {
    return lc.fail("library is not an ELF shared object",
                   lc.manifest.library_path.string() + " does not start with the ELF magic",
                   "point 'library' at the plugin's .so built for this platform");
  }
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || n < static_cast<ssize_t>(sizeof(header))) {
    return lc.fail(
        "library is not a 64-bit ELF object",
        "ELF class " + std::to_string(header.e_ident[EI_CLASS]) + ", expected 2 (64-bit)",
        "rebuild the plugin for this platform");
  }
#if defined(__x86_64__)
  constexpr uint16_t kMachine = EM_X86_64;
  constexpr const char* kMachineName = "x86_64";
#elif defined(__aarch64__)
  constexpr uint16_t kMachine = EM_AARCH64;
  constexpr const char* kMachineName = "aarch64";
#else
  constexpr uint16_t kMachine = 0;
  constexpr const char* kMachineName = "this machine";
#endif
  if (kMachine != 0 && header.e_machine != kMachine) {
    return lc.fail(
        "library is built for another CPU architecture",
        "ELF machine " + std::to_string(header.e_machine) + ", this host is " + kMachineName,
        "install the plugin build for " + std::string(kMachineName));
  }
  if (header.e_type != ET_DYN) {
    return lc.fail("library is not a shared object",
                   "ELF type " + std::to_string(header.e_type) + ", expected ET_DYN (3)",
                   "build the plugin as a MODULE/SHARED library");
  }
  return ok_status();
}

Status check_entry_symbol(const std::string& fd_path, const LoadContext& lc) {
  try {
    boost::dll::library_info info(fd_path, /*throw_if_not_native=*/true);
    const std::vector<std::string> symbols = info.symbols();
    if (std::find(symbols.begin(), symbols.end(), QF_PLUGIN_ENTRY_SYMBOL) == symbols.end()) {
      return lc.fail("library does not export qf_plugin_entry",
                     "the symbol table of " + lc.manifest.library_path.string() +
                         " has no 'qf_plugin_entry' (" + std::to_string(symbols.size()) +
                         " symbols exported)",
                     "define the entry with QF_PLUGIN_ENTRY(...) and link with "
                     "qforge_plugin_link_rules() so exports.map exports it");
    }
  } catch (const std::exception& e) {
    return lc.fail("cannot read the library's symbol table", e.what(),
                   "check that the library is a valid ELF shared object");
  }
  return ok_status();
}

Status check_plugin_info(const qf_plugin_info& info, const LoadContext& lc) {
  const uint32_t v = info.abi_version;
  if (v == 0) {
    return lc.fail(
        "plugin refused negotiation without a status",
        "qf_plugin_entry left abi_version 0 (it could not use the host's services table)",
        "rebuild the plugin against this host's plugin-api");
  }
  if (QF_ABI_VERSION_MAJOR(v) != QF_ABI_MAJOR || v < host_min_abi() || v > host_max_abi()) {
    return lc.fail("plugin negotiated an ABI version the host does not speak",
                   "plugin chose ABI " + abi_string(v) + "; host speaks " +
                       abi_string(host_min_abi()) + ".." + abi_string(host_max_abi()),
                   "rebuild the plugin against this host's plugin-api (ABI major " +
                       std::to_string(QF_ABI_MAJOR) + ")");
  }
  const std::string id = bounded_string(info.plugin_id, 256);
  if (id != lc.manifest.id) {
    return lc.fail("plugin id differs from its manifest",
                   "library says '" + id + "', manifest says '" + lc.manifest.id + "'",
                   "make the manifest's id equal the PluginSpec id");
  }
  if (info.method_count < 0 || info.method_count > 1024 ||
      (info.method_count > 0 && info.methods == nullptr)) {
    return lc.fail("plugin returned an invalid method table",
                   "method_count " + std::to_string(info.method_count) +
                       (info.methods == nullptr ? " with a NULL methods array" : ""),
                   "report to the plugin vendor");
  }
  for (int32_t i = 0; i < info.method_count; ++i) {
    const qf_method* m = info.methods[i];
    const std::string slot = "methods[" + std::to_string(i) + "]";
    std::string why;
    if (m == nullptr) {
      why = slot + " is NULL";
    } else if (m->struct_size < kMinMethodSize) {
      why = slot + ".struct_size " + std::to_string(m->struct_size) + " < " +
            std::to_string(kMinMethodSize) + " (ABI 1.0's qf_method)";
    } else if (m->quant_method == nullptr) {
      why = slot + ".quant_method is NULL";
    } else if (m->create == nullptr) {
      why = slot + ".create is NULL";
    } else if (m->destroy == nullptr) {
      why = slot + ".destroy is NULL";
    }
    if (!why.empty()) {
      return lc.fail("plugin returned an invalid method table entry", why,
                     "report to the plugin vendor");
    }
  }
  return ok_status();
}

Status check_methods_match(const std::map<std::string, const qf_method*>& runtime,
                           const LoadContext& lc) {
  std::set<std::string> declared;
  for (const auto& m : lc.manifest.methods) declared.insert(m.quant_method);
  std::set<std::string> actual;
  for (const auto& [name, _] : runtime) actual.insert(name);
  if (declared == actual) return ok_status();
  auto join = [](const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : ", ") + x;
    return "[" + out + "]";
  };
  return lc.fail("plugin's methods differ from its manifest",
                 "manifest declares " + join(declared) + ", library provides " + join(actual),
                 "make the manifest's methods list match the library (or install the matching "
                 "library version)");
}

}  // namespace

Status LoadedPlugin::acquire() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (users_ == 0 && info.init != nullptr) {
    QF_RETURN_IF_ERROR(consume_status(info.init("{}"), "plugin '" + id + "' init"));
  }
  ++users_;
  return ok_status();
}

void LoadedPlugin::release() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (users_ > 0 && --users_ == 0 && info.shutdown != nullptr) info.shutdown();
}

Result<std::shared_ptr<LoadedPlugin>> load_plugin_library(const PluginManifest& manifest) {
  const LoadContext lc{manifest};
  auto log = get_logger("host.loader");

  if (manifest.abi_major != QF_ABI_MAJOR) {
    return lc.fail(
        "plugin is built for another ABI major version",
        "manifest declares ABI " + std::to_string(manifest.abi_major) + ".x; this host speaks " +
            abi_string(host_min_abi()) + ".." + abi_string(host_max_abi()),
        manifest.abi_major > QF_ABI_MAJOR
            ? "upgrade qforge to a host that speaks ABI " + std::to_string(manifest.abi_major)
            : "rebuild the plugin against this host's plugin-api");
  }
  if (manifest.abi_min_minor > QF_ABI_MINOR) {
    return lc.fail("plugin needs a newer host",
                   "manifest requires host ABI >= " + std::to_string(manifest.abi_major) + "." +
                       std::to_string(manifest.abi_min_minor) + "; this host speaks up to " +
                       abi_string(host_max_abi()),
                   "upgrade qforge to a version with ABI " + std::to_string(manifest.abi_major) +
                       "." + std::to_string(manifest.abi_min_minor) + " or newer");
  }

  // Containment: the resolved library (symlinks followed) must stay inside the manifest folder.
  std::error_code ec;
  const fs::path folder = fs::canonical(manifest.path.parent_path(), ec);
  if (ec) return lc.fail("cannot resolve the manifest folder", ec.message(), "check the path");
  const fs::path library = fs::canonical(manifest.library_path, ec);
  if (ec) {
    return lc.fail("plugin library not found", manifest.library_path.string() + ": " + ec.message(),
                   "build/install the plugin library next to its manifest, or fix 'library'");
  }
  if (!is_within(library, folder)) {
    return lc.fail("plugin library resolves outside the manifest's folder",
                   manifest.library_path.string() + " -> " + library.string() + " is not under " +
                       folder.string(),
                   "place the library (not a symlink to elsewhere) beside the manifest");
  }
  struct stat folder_stat {};
  if (stat(folder.c_str(), &folder_stat) == 0 && (folder_stat.st_mode & S_IWOTH) != 0) {
    return lc.fail("plugin folder is world-writable",
                   folder.string() + " has mode " + std::to_string(folder_stat.st_mode & 07777),
                   "chmod o-w " + folder.string());
  }

  const int fd = open(library.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return lc.fail("cannot open plugin library", library.string() + ": " + std::strerror(errno),
                   "check the file exists and is readable");
  }
  // The descriptor stays open for the life of the process: the library is loaded through
  // /proc/self/fd/N, and glibc matches later dlopen calls by name, so N must never be reused.
  bool keep_fd = false;
  struct FdCloser {
    int fd;
    bool* keep;
    ~FdCloser() {
      if (!*keep) close(fd);
    }
  } closer{fd, &keep_fd};

  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return lc.fail("plugin library is not a regular file", library.string(),
                   "point 'library' at the plugin's .so");
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    return lc.fail("plugin library is world-writable",
                   library.string() + " has mode " + std::to_string(st.st_mode & 07777),
                   "chmod o-w " + library.string());
  }
  const LibraryKey key{st.st_dev, st.st_ino};
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);

  if (manifest.sha256) {
    auto digest = sha256_of_fd(fd, library.string());
    if (!digest.ok()) return digest.error();
    if (digest.value() != *manifest.sha256) {
      return lc.fail("plugin library does not match its pinned sha256",
                     "expected " + *manifest.sha256 + ", file has " + digest.value(),
                     "reinstall the plugin, or update 'sha256' if the library was rebuilt on "
                     "purpose");
    }
  }
  if (auto it = reg.loaded.find(key); it != reg.loaded.end()) {
    if (it->second->id != manifest.id) {
      return lc.fail("library already loaded under another plugin id",
                     "loaded as '" + it->second->id + "'", "give each plugin its own library");
    }
    QF_RETURN_IF_ERROR(check_methods_match(it->second->methods, lc));
    return it->second;
  }

  QF_RETURN_IF_ERROR(check_elf_header(fd, lc));
  const std::string fd_path = "/proc/self/fd/" + std::to_string(fd);
  QF_RETURN_IF_ERROR(check_entry_symbol(fd_path, lc));

  auto library_handle = std::make_shared<boost::dll::shared_library>();
  try {
    library_handle->load(fd_path,
                         boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    std::string reason = e.what();
    if (const auto at = reason.find(fd_path); at != std::string::npos) {
      reason.replace(at, fd_path.size(), library.string());  // name the file, not the descriptor
    }
    return lc.fail("dlopen failed", reason,
                   "check the library's dependencies with `ldd " + library.string() +
                       "` and that it was linked with --no-undefined");
  }
  keep_fd = true;
  reg.libraries.push_back(library_handle);  // loaded now: never unload, even on failure below

  qf_plugin_entry_fn entry = nullptr;
  try {
    entry = &library_handle->get<qf_status*(const qf_host_info*, qf_plugin_info*)>(
        QF_PLUGIN_ENTRY_SYMBOL);
  } catch (const std::exception& e) {
    return lc.fail("cannot resolve qf_plugin_entry", e.what(), "export qf_plugin_entry");
  }

  auto plugin = std::make_shared<LoadedPlugin>();
  plugin->id = manifest.id;
  qf_host_info host_info{};
  host_info.struct_size = sizeof(qf_host_info);
  host_info.abi_version = QF_ABI_VERSION;
  host_info.min_abi = host_min_abi();
  host_info.max_abi = host_max_abi();
  host_info.host_version = kHostVersion;
  host_info.api = host_api_for(manifest.id);
  plugin->info.struct_size = sizeof(qf_plugin_info);
  qf_status* entry_status = nullptr;
  try {
    entry_status = entry(&host_info, &plugin->info);
  } catch (...) {
    // A C entry has no business throwing; contain it rather than unwind through the host.
    return lc.fail("qf_plugin_entry threw a C++ exception", "exceptions must not cross the C ABI",
                   "report to the plugin vendor");
  }
  QF_RETURN_IF_ERROR(consume_status(entry_status, lc.prefix() + " negotiation"));
  QF_RETURN_IF_ERROR(check_plugin_info(plugin->info, lc));
  plugin->negotiated_abi = plugin->info.abi_version;
  plugin->runtime_version = bounded_string(plugin->info.plugin_version, 256);
  for (int32_t i = 0; i < plugin->info.method_count; ++i) {
    const qf_method* m = plugin->info.methods[i];
    const std::string name = bounded_string(m->quant_method, 256);
    if (!plugin->methods.emplace(name, m).second) {
      return lc.fail("plugin lists a method twice", "'" + name + "' appears more than once",
                     "report to the plugin vendor");
    }
  }
  QF_RETURN_IF_ERROR(check_methods_match(plugin->methods, lc));
  reg.loaded.emplace(key, plugin);
  log->debug("loaded plugin '{}' {} from {} (ABI {})", plugin->id, plugin->runtime_version,
             library.string(), abi_string(plugin->negotiated_abi));
  return plugin;
}

}  // namespace qforge::plugins
