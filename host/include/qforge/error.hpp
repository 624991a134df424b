// Errors in qforge: what failed, why (actual vs expected, with values), how to fix, plus the
// process exit code a CLI should use. The host returns Status / Result<T> internally and the
// public API throws qforge::Error; both carry the same triple.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace qforge {

// Mirrors QF_CODE_* of the C ABI.
enum class ErrorCode : int {
  kInvalidArgument = 1,
  kFailedPrecondition = 2,
  kUnimplemented = 3,
  kResourceExhausted = 4,
  kDeviceError = 5,
  kInternal = 6,
  kCancelled = 7,
};

// Process exit codes (ARCHITECTURE.md "CLI surface").
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,
  kUsage = 2,
  kEnvironment = 3,  // environment validation failed
  kBadInput = 4,     // checkpoint, config, manifest
  kPlugin = 5,       // plugin contract violation or crash
};

const char* error_code_name(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, ExitCode exit, std::string what, std::string why, std::string fix)
      : std::runtime_error(what),
        code_(code),
        exit_(exit),
        what_(std::move(what)),
        why_(std::move(why)),
        fix_(std::move(fix)) {}

  ErrorCode code() const noexcept { return code_; }
  ExitCode exit_code() const noexcept { return exit_; }
  const std::string& summary() const noexcept { return what_; }
  const std::string& why() const noexcept { return why_; }
  const std::string& fix() const noexcept { return fix_; }
  // "what: why (fix: ...)" on one line, for logs.
  std::string to_string() const;

 private:
  ErrorCode code_;
  ExitCode exit_;
  std::string what_, why_, fix_;
};

// Shorthands for the common categories.
Error bad_input(std::string what, std::string why, std::string fix);
Error environment_error(std::string what, std::string why, std::string fix);
Error plugin_error(std::string what, std::string why, std::string fix);
Error internal_error(std::string what, std::string why);
Error usage_error(std::string what, std::string why, std::string fix);

// A status: empty on success. [[nodiscard]] so an ignored failure is a compile warning.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design
  bool ok() const noexcept { return !error_.has_value(); }
  const Error& error() const { return *error_; }
  void throw_if_error() const {
    if (error_) throw *error_;
  }

 private:
  std::optional<Error> error_;
};

inline Status ok_status() { return Status(); }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}         // NOLINT: implicit by design
  Result(const Status& status) : v_(status.error()) {}  // NOLINT: only for failures
  bool ok() const noexcept { return std::holds_alternative<T>(v_); }
  const Error& error() const { return std::get<Error>(v_); }
  Status status() const { return ok() ? Status() : Status(error()); }
  T& value() & {
    if (!ok()) throw std::get<Error>(v_);
    return std::get<T>(v_);
  }
  const T& value() const& {
    if (!ok()) throw std::get<Error>(v_);
    return std::get<T>(v_);
  }
  T&& value() && {
    if (!ok()) throw std::get<Error>(v_);
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

[[noreturn]] void assert_fail(const char* expr, const char* file, int line);

}  // namespace qforge

#define QF_CONCAT_INNER_(a, b) a##b
#define QF_CONCAT_(a, b) QF_CONCAT_INNER_(a, b)

// Propagates a failed Status (or Result) to the caller.
#define QF_RETURN_IF_ERROR(expr)                                                                 \
  do {                                                                                           \
    const ::qforge::Status QF_CONCAT_(qf_status_, __LINE__) = (expr);                            \
    if (!QF_CONCAT_(qf_status_, __LINE__).ok()) return QF_CONCAT_(qf_status_, __LINE__).error(); \
  } while (false)

// Bad input: returns an Error (as Status/Result) when cond is false.
#define QF_CHECK(cond, error_expr)    \
  do {                                \
    if (!(cond)) return (error_expr); \
  } while (false)

// Our own bug: aborts with file:line. Never for input a user can give.
#define QF_ASSERT(cond)                                            \
  do {                                                             \
    if (!(cond)) ::qforge::assert_fail(#cond, __FILE__, __LINE__); \
  } while (false)
