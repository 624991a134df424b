// spdlog loggers, one per subsystem ("host.loader", "host.config", "plugin.<id>"). All write to
// stderr so stdout stays free for --json output.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace qforge {

// Returns (creating on first use) the named logger, writing to stderr at the global level.
std::shared_ptr<spdlog::logger> get_logger(const std::string& name);
// Sets the level of every qforge logger, now and later: "trace".."error", "off".
void set_log_level(spdlog::level::level_enum level);
spdlog::level::level_enum log_level();

}  // namespace qforge
