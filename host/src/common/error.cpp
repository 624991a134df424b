#include "qforge/error.hpp"

namespace qforge {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case ErrorCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case ErrorCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case ErrorCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case ErrorCode::kDeviceError:
      return "DEVICE_ERROR";
    case ErrorCode::kInternal:
      return "INTERNAL";
    case ErrorCode::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

std::string Error::to_string() const {
  std::string s = what_;
  if (!why_.empty()) s += ": " + why_;
  if (!fix_.empty()) s += " (fix: " + fix_ + ")";
  return s;
}

Error bad_input(std::string what, std::string why, std::string fix) {
  return Error(ErrorCode::kInvalidArgument, ExitCode::kBadInput, std::move(what), std::move(why),
               std::move(fix));
}

Error environment_error(std::string what, std::string why, std::string fix) {
  return Error(ErrorCode::kFailedPrecondition, ExitCode::kEnvironment, std::move(what),
               std::move(why), std::move(fix));
}

Error plugin_error(std::string what, std::string why, std::string fix) {
  return Error(ErrorCode::kInternal, ExitCode::kPlugin, std::move(what), std::move(why),
               std::move(fix));
}

Error internal_error(std::string what, std::string why) {
  return Error(ErrorCode::kInternal, ExitCode::kInternal, std::move(what), std::move(why),
               "report this to the qforge developers");
}

Error usage_error(std::string what, std::string why, std::string fix) {
  return Error(ErrorCode::kInvalidArgument, ExitCode::kUsage, std::move(what), std::move(why),
               std::move(fix));
}

void assert_fail(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "qforge internal assertion failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace qforge
