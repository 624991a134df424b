// Small POSIX helpers shared by the checkpoint reader and writer: an fd owner, system-call
// errors with errno text, and write/fsync/rename wrappers that consult WriterFaults first so
// tests can fail any one of them (RELIABILITY IO2/IO3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"

namespace qforge::checkpoint {

// Owns one file descriptor; closes it on destruction (errors ignored: callers that care about
// close() having flushed use fsync first).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() noexcept;

 private:
  int fd_ = -1;
};

// An error for a failed system call `operation` on `path` with errno `err`. ENOSPC, EDQUOT and
// EFBIG become RESOURCE_EXHAUSTED with a "free disk space" hint; the rest are INTERNAL I/O errors.
Error io_error(const std::string& operation, const std::filesystem::path& path, int err);

// Runs faults->before(operation, path) when a fault hook is installed.
Status consult_faults(const std::shared_ptr<WriterFaults>& faults, const std::string& operation,
                      const std::filesystem::path& path);

// pwrite of all `size` bytes at `offset`, in chunks (short writes and EINTR retried); the fault
// hook sees every chunk as one "write".
Status pwrite_all(int fd, const void* data, size_t size, uint64_t offset,
                  const std::filesystem::path& path, const std::shared_ptr<WriterFaults>& faults);
Status fsync_fd(int fd, const std::filesystem::path& path,
                const std::shared_ptr<WriterFaults>& faults);
// Opens a folder read-only and fsyncs it (so a rename or create inside it is durable).
Status fsync_dir(const std::filesystem::path& dir, const std::shared_ptr<WriterFaults>& faults);
Status rename_path(const std::filesystem::path& from, const std::filesystem::path& to,
                   const std::shared_ptr<WriterFaults>& faults);

// Reads a whole regular file of at most `max_bytes` (checked with fstat before reading).
// `what` names the file's role in errors ("config.json", "index").
Result<std::string> read_small_file(const std::filesystem::path& path, uint64_t max_bytes,
                                    const std::string& what);

}  // namespace qforge::checkpoint
