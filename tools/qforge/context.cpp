#include "context.hpp"

#include <fstream>
#include <sstream>

#include "qforge/logging.hpp"

namespace qforge::cli {

void CliContext::apply_log_level() const {
  spdlog::level::level_enum level = spdlog::level::warn;
  if (options.verbose == 1) level = spdlog::level::debug;
  if (options.verbose >= 2) level = spdlog::level::trace;
  if (options.quiet) level = spdlog::level::err;
  if (!options.log_level.empty()) level = spdlog::level::from_str(options.log_level);
  set_log_level(level);
}

HostOptions CliContext::host_options() const {
  HostOptions host;
  for (const auto& dir : options.plugin_dirs) host.plugin_dirs.emplace_back(dir);
  host.use_env_path = !options.no_env_path;
  host.use_default_dirs = !options.no_default_dirs;
  if (!options.env_file.empty()) host.environment = read_environment_file(options.env_file);
  return host;
}

Environment read_environment_file(const std::string& path) {
  const std::string fix =
      "pass a JSON object shaped like the \"environment\" of `qforge doctor --json`";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw bad_input("cannot read environment file '" + path + "'",
                    "the file does not exist or is not readable", fix);
  }
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw bad_input("environment file '" + path + "' is not valid JSON", e.what(), fix);
  }
  if (j.is_object() && j.contains("environment")) j = j["environment"];
  if (!j.is_object()) {
    throw bad_input("environment file '" + path + "' is not a JSON object",
                    std::string("its top level is a JSON ") + j.type_name(), fix);
  }
  try {
    return environment_from_json(j);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw bad_input("environment file '" + path + "' does not describe an environment", e.what(),
                    fix);
  }
}

}  // namespace qforge::cli
