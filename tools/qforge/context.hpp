// What every subcommand shares: the global flags, the output channel, and how to build a Host
// from them. Subcommands live in their own files and register through commands.hpp.
#pragma once

#include <string>
#include <vector>

#include "output.hpp"
#include "qforge/host.hpp"

namespace qforge::cli {

struct GlobalOptions {
  std::vector<std::string> plugin_dirs;  // --plugin-dir, in order
  bool no_env_path = false;              // --no-env-path: ignore QFORGE_PLUGIN_PATH
  bool no_default_dirs = false;          // --no-default-dirs: skip build-tree/install folders
  bool json = false;                     // --json
  int verbose = 0;                       // -v (debug), -vv (trace)
  bool quiet = false;                    // -q (errors only)
  std::string log_level;                 // --log-level NAME (wins over -v/-q)
  std::string env_file;                  // --env FILE: simulated environment
};

struct CliContext {
  GlobalOptions options;
  Output* out = nullptr;

  // Applies -v/-q/--log-level to every qforge logger. Default: warnings and errors.
  void apply_log_level() const;
  // Host options from the global flags; reads --env FILE (bad_input, exit 4, when unreadable).
  HostOptions host_options() const;
};

// Reads a simulated environment: the "environment" object of `qforge doctor --json` (the whole
// doctor document is accepted too). Throws qforge::Error (exit 4) naming the file on failure.
Environment read_environment_file(const std::string& path);

}  // namespace qforge::cli
