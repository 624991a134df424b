// Where the fault-plugin fixtures are (tests/fixtures/CMakeLists.txt) and small helpers the
// host plugin tests share: scratch copies of fixture folders, an isolated HostOptions, scoped
// process state (environment variables, working directory) and /proc/self/maps inspection.
// Header-only; every function is inline.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "qforge/environment.hpp"
#include "qforge/host.hpp"
#include "support/manifest_builder.hpp"

#ifndef QFORGE_TEST_FIXTURE_PLUGIN_DIR
#error "QFORGE_TEST_FIXTURE_PLUGIN_DIR must be defined by tests/CMakeLists.txt"
#endif

namespace qforge::fixtures {

namespace fs = std::filesystem;

// <build>/tests/fixtures/plugins: one folder per fixture plugin.
inline fs::path fixture_root() { return fs::path(QFORGE_TEST_FIXTURE_PLUGIN_DIR); }

// The folder of one fixture ("qf_fault_ok", "shadow_a", "not_elf", ...). Fails the current test
// when it is missing, which means the fixtures were not built.
inline fs::path fixture_dir(const std::string& folder) {
  const fs::path dir = fixture_root() / folder;
  std::error_code ec;
  EXPECT_TRUE(fs::is_directory(dir, ec))
      << dir << " does not exist: build the qforge_fault_plugins target";
  return dir;
}

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        (fs::path(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") / "qforge-test-XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp(" << pattern << ") failed";
      return;
    }
    // Canonical, so paths compare equal to what the host resolves (e.g. /tmp behind a symlink).
    path_ = fs::canonical(buffer.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) {
      // A test may have left something unwritable; restore before removing.
      for (auto it = fs::recursive_directory_iterator(path_, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec) && !it->is_symlink(ec)) {
          fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
        }
      }
      fs::remove_all(path_, ec);
    }
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Copies the regular files of fixture `folder` into `dest` (created), keeping their names.
// Returns `dest`. A copy has its own inode, so the host treats it as a different library.
inline fs::path copy_fixture(const std::string& folder, const fs::path& dest) {
  fs::create_directories(dest);
  for (const auto& entry : fs::directory_iterator(fixture_dir(folder))) {
    if (entry.is_regular_file()) {
      fs::copy_file(entry.path(), dest / entry.path().filename(),
                    fs::copy_options::overwrite_existing);
    }
  }
  return dest;
}

// Copies one file of fixture `folder` into `dest_dir` (created); returns the copy's path.
inline fs::path copy_fixture_file(const std::string& folder, const std::string& file,
                                  const fs::path& dest_dir) {
  fs::create_directories(dest_dir);
  const fs::path dest = dest_dir / file;
  fs::copy_file(fixture_dir(folder) / file, dest, fs::copy_options::overwrite_existing);
  return dest;
}

// The manifest tests/fixtures/CMakeLists.txt writes for a fault plugin: `id`, `library`, one
// method fault_rtn on cpu and cuda at `priority`. A test changes what it needs, then write()s
// it beside a copied library.
inline test::ManifestBuilder fault_manifest(const std::string& id, const std::string& library,
                                            int priority = 0) {
  test::ManifestBuilder m;
  m.id(id).name("qforge test fixture " + id).vendor("qforge-tests").library(library);
  m.method(test::MethodBuilder("fault_rtn")
               .devices({test::DeviceBuilder::cpu(), test::DeviceBuilder::cuda()})
               .priority(priority));
  return m;
}

inline std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// Replaces the first `from` in a text file by `to`; fails the test when `from` is absent.
inline void replace_in_file(const fs::path& path, const std::string& from, const std::string& to) {
  std::string text = read_text(path);
  const size_t pos = text.find(from);
  ASSERT_NE(pos, std::string::npos) << "'" << from << "' not found in " << path;
  text.replace(pos, from.size(), to);
  write_text(path, text);
}

// A machine with a CPU and no GPU, so results never depend on where the tests run.
inline Environment cpu_only_environment() {
  Environment env;
  env.cpu_arch = "x86_64";
  env.cpu_model = "qforge test CPU";
  env.logical_cpus = 2;
  env.host_memory = uint64_t{8} << 30;
  env.cuda_status = "simulated: no CUDA driver";
  env.hip_status = "simulated: no HIP runtime";
  env.host_version = kHostVersion;
  return env;
}

// The same machine plus one CUDA GPU with compute capability major.minor at index 0.
inline Environment environment_with_cuda_gpu(int cc_major, int cc_minor) {
  Environment env = cpu_only_environment();
  env.cuda_driver_found = true;
  env.cuda_driver_version = 12040;
  env.cuda_status.clear();
  GpuDevice gpu;
  gpu.backend = "cuda";
  gpu.index = 0;
  gpu.name = "Simulated GPU sm_" + std::to_string(cc_major) + std::to_string(cc_minor);
  gpu.cc_major = cc_major;
  gpu.cc_minor = cc_minor;
  gpu.total_memory = uint64_t{40} << 30;
  gpu.free_memory = uint64_t{39} << 30;
  env.devices.push_back(gpu);
  return env;
}

// Searches exactly `dirs`: no QFORGE_PLUGIN_PATH, no build-tree or install defaults.
inline HostOptions isolated_options(std::vector<fs::path> dirs,
                                    Environment env = cpu_only_environment()) {
  HostOptions options;
  options.plugin_dirs = std::move(dirs);
  options.use_env_path = false;
  options.use_default_dirs = false;
  options.environment = std::move(env);
  return options;
}

// A copy of the record of the first manifest with this plugin id, or nullopt. A copy, because
// Host::plugins() returns a temporary that a pointer would outlive.
inline std::optional<PluginRecord> find_record(const std::vector<PluginRecord>& records,
                                               const std::string& id) {
  for (const auto& r : records) {
    if (r.id() == id) return r;
  }
  return std::nullopt;
}

// A copy of the record of one manifest file, or nullopt.
inline std::optional<PluginRecord> find_record_by_manifest(const std::vector<PluginRecord>& records,
                                                           const fs::path& manifest) {
  std::error_code ec;
  for (const auto& r : records) {
    if (fs::equivalent(r.manifest_path, manifest, ec)) return r;
  }
  return std::nullopt;
}

// Whether `library` (a real file) is mapped into this process, i.e. was dlopen'ed. The kernel
// names mappings by the file's path, also when it was opened through /proc/self/fd/N.
inline bool library_is_mapped(const fs::path& library) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(library, ec);
  const std::string needle = ec ? library.string() : canonical.string();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash != std::string::npos && line.compare(slash, std::string::npos, needle) == 0) {
      return true;
    }
  }
  return false;
}

// Sets (or unsets, with nullopt) an environment variable for one scope.
class ScopedEnvVar {
 public:
  ScopedEnvVar(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = std::string(old);
    if (value) {
      setenv(name_.c_str(), value->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }
  ~ScopedEnvVar() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }
  ScopedEnvVar(const ScopedEnvVar&) = delete;
  ScopedEnvVar& operator=(const ScopedEnvVar&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// Changes the working directory for one scope.
class ScopedCwd {
 public:
  explicit ScopedCwd(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ScopedCwd() {
    std::error_code ec;
    fs::current_path(old_, ec);
  }
  ScopedCwd(const ScopedCwd&) = delete;
  ScopedCwd& operator=(const ScopedCwd&) = delete;

 private:
  fs::path old_;
};

}  // namespace qforge::fixtures
