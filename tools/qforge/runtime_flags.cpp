#include "runtime_flags.hpp"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>

#include "method_options.hpp"  // kAllowEmulationHelp

namespace qforge::cli {

void RuntimeFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--threads", threads, "CPU threads (0: every core)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--arch-dir", arch_dirs, "Architecture map folder (instead of defaults)")
      ->type_name("DIR");
  cmd.add_flag("--allow-emulation", allow_emulation, kAllowEmulationHelp);
}

runtime::RuntimeOptions RuntimeFlags::options() const {
  runtime::RuntimeOptions o;
  o.num_threads = threads;
  o.architecture_dirs.assign(arch_dirs.begin(), arch_dirs.end());
  o.allow_emulation = allow_emulation;
  return o;
}

std::vector<int64_t> parse_id_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ',' || text[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = text.find_first_of(", ", i);
    if (end == std::string::npos) end = text.size();
    const std::string token = text.substr(i, end - i);
    errno = 0;
    const bool digits = token.find_first_not_of("0123456789") == std::string::npos;
    const long long v = digits ? std::strtoll(token.c_str(), nullptr, 10) : -1;
    if (!digits || errno == ERANGE) {
      throw bad_input("bad token id '" + token + "' in " + flag,
                      "ids are non-negative decimal integers separated by commas or spaces",
                      "e.g. " + flag + " 1,2,3");
    }
    ids.push_back(static_cast<int64_t>(v));
    i = end;
  }
  if (ids.empty()) {
    throw bad_input(flag + " holds no token id", "got '" + text + "'", "e.g. " + flag + " 1,2,3");
  }
  return ids;
}

}  // namespace qforge::cli
