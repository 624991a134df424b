// Runs the built `qforge` binary (or any program) as a child process with stdout and stderr
// captured separately, the way a user's shell or pipeline sees it.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qforge::test {

struct ProcessResult {
  int exit_code = -1;  // 128 + signal number when the child was killed by a signal
  std::string out;
  std::string err;
  // "exit 4; stdout: ...; stderr: ..." for assertion messages.
  std::string describe() const;
};

struct ProcessOptions {
  // Variables to set (value) or remove (nullopt) in the child's environment. By default the
  // runner removes QFORGE_PLUGIN_PATH so a developer's setting cannot change what tests see.
  std::map<std::string, std::optional<std::string>> env = {{"QFORGE_PLUGIN_PATH", std::nullopt}};
};

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// Runs the qforge binary under test (QFORGE_CLI_PATH) with `args`.
ProcessResult run_qforge(const std::vector<std::string>& args, const ProcessOptions& options = {});

// Parses all of stdout as exactly one JSON document; nullopt (and *why) when it is not.
std::optional<nlohmann::json> parse_stdout_json(const ProcessResult& result, std::string* why);

// A fresh private temporary folder, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  // Writes `text` to path()/name and returns the full path.
  std::filesystem::path write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

// The record with id `id` in a `plugins --json` list or doctor's "plugins"; nullptr if absent.
const nlohmann::json* find_plugin(const nlohmann::json& plugins, const std::string& id);
// quant_method names of a plugin record.
std::vector<std::string> method_names(const nlohmann::json& plugin);

}  // namespace qforge::test
