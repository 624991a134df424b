#include "qforge/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <mutex>

namespace qforge {
namespace {

std::atomic<spdlog::level::level_enum> g_level{spdlog::level::info};
std::mutex g_mutex;

}  // namespace

std::shared_ptr<spdlog::logger> get_logger(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (auto existing = spdlog::get(name)) return existing;
  // All qforge loggers share one stderr sink: stdout is reserved for --json output.
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_level(g_level.load());
  logger->set_pattern("[%H:%M:%S.%e] [%n] [%^%l%$] %v");
  spdlog::register_logger(logger);
  return logger;
}

void set_log_level(spdlog::level::level_enum level) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_level.store(level);
  spdlog::apply_all([level](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level); });
}

spdlog::level::level_enum log_level() { return g_level.load(); }

}  // namespace qforge
