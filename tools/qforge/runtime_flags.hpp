// Flags shared by the commands that run a model (generate, eval): --threads, --arch-dir, and
// parsing of id lists given on the command line.
#pragma once

#include <string>
#include <vector>

#include "qforge/runtime.hpp"

namespace CLI {
class App;
}  // namespace CLI

namespace qforge::cli {

struct RuntimeFlags {
  int threads = 0;
  std::vector<std::string> arch_dirs;
  bool allow_emulation = false;
  void add_to(CLI::App& cmd);
  runtime::RuntimeOptions options() const;
};

// "1,2,3" or "1 2 3" -> ids. Throws bad_input (exit 4) naming `flag` and the bad entry.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& flag);

}  // namespace qforge::cli
