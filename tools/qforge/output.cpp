#include "output.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>

namespace qforge::cli {

std::FILE* contain_stdout() noexcept {
  std::fflush(stdout);
  // F_DUPFD_CLOEXEC: child processes (if a command ever spawns one) must not inherit the real
  // stdout behind our back either.
  const int private_fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (private_fd < 0) return stdout;
  std::FILE* out = ::fdopen(private_fd, "w");
  if (out == nullptr) {
    ::close(private_fd);
    return stdout;
  }
  if (::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    std::fclose(out);
    return stdout;
  }
  return out;
}

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Output::text(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), out_);
  std::fflush(out_);
}

void Output::json_document(const nlohmann::json& doc) {
  text(dump_json(doc) + "\n");
  document_written_ = true;
}

void Output::error(const Error& e) {
  std::fprintf(stderr, "qforge: error: %s\n", e.summary().c_str());
  if (!e.why().empty()) std::fprintf(stderr, "  why: %s\n", e.why().c_str());
  if (!e.fix().empty()) std::fprintf(stderr, "  fix: %s\n", e.fix().c_str());
  std::fflush(stderr);
  if (json_ && !document_written_) {
    json_document({{"error",
                    {{"what", e.summary()},
                     {"why", e.why()},
                     {"fix", e.fix()},
                     {"code", error_code_name(e.code())},
                     {"exit_code", static_cast<int>(e.exit_code())}}}});
  }
}

std::string format_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof(buf), "%" PRIu64 " B", bytes);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", value, kUnits[unit]);
  }
  return buf;
}

}  // namespace qforge::cli
