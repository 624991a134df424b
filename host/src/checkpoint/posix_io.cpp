#include "checkpoint/posix_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace qforge::checkpoint {
namespace {

// Bigger single pwrite calls gain nothing and Linux caps one call at 0x7ffff000 bytes anyway.
constexpr size_t kWriteChunk = size_t{64} << 20;

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

Fd::~Fd() { reset(); }

void Fd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Error io_error(const std::string& operation, const std::filesystem::path& path, int err) {
  const std::string what = operation + " '" + path.string() + "' failed";
  const std::string why = std::strerror(err) + std::string(" (errno ") + std::to_string(err) + ")";
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    return Error(ErrorCode::kResourceExhausted, ExitCode::kInternal, what, why,
                 "free disk space (or raise the quota / file size limit) and run again");
  }
  if (err == EACCES || err == EPERM || err == EROFS) {
    return Error(ErrorCode::kFailedPrecondition, ExitCode::kInternal, what, why,
                 "check the permissions of the folder");
  }
  return Error(ErrorCode::kInternal, ExitCode::kInternal, what, why,
               "check the disk and the file system, then run again");
}

Status consult_faults(const std::shared_ptr<WriterFaults>& faults, const std::string& operation,
                      const std::filesystem::path& path) {
  if (faults && faults->before) return faults->before(operation, path);
  return ok_status();
}

Status pwrite_all(int fd, const void* data, size_t size, uint64_t offset,
                  const std::filesystem::path& path, const std::shared_ptr<WriterFaults>& faults) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const size_t chunk = std::min(size, kWriteChunk);
    QF_RETURN_IF_ERROR(consult_faults(faults, "write", path));
    const ssize_t n = ::pwrite(fd, p, chunk, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("write", path, errno);
    }
    if (n == 0) return io_error("write", path, EIO);  // no progress: treat as an I/O error
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return ok_status();
}

Status fsync_fd(int fd, const std::filesystem::path& path,
                const std::shared_ptr<WriterFaults>& faults) {
  QF_RETURN_IF_ERROR(consult_faults(faults, "fsync", path));
  if (::fsync(fd) != 0) return io_error("fsync", path, errno);
  return ok_status();
}

Status fsync_dir(const std::filesystem::path& dir, const std::shared_ptr<WriterFaults>& faults) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return io_error("open folder", dir, errno);
  return fsync_fd(fd.get(), dir, faults);
}

Status rename_path(const std::filesystem::path& from, const std::filesystem::path& to,
                   const std::shared_ptr<WriterFaults>& faults) {
  QF_RETURN_IF_ERROR(consult_faults(faults, "rename", to));
  if (::rename(from.c_str(), to.c_str()) != 0) return io_error("rename to", to, errno);
  return ok_status();
}

Result<std::string> read_small_file(const std::filesystem::path& path, uint64_t max_bytes,
                                    const std::string& what) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    return bad_input("cannot open " + what + " '" + path.string() + "'",
                     std::strerror(err) + std::string(" (errno ") + std::to_string(err) + ")",
                     "check that the file exists and is readable");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("stat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return bad_input(what + " '" + path.string() + "' is not a regular file",
                     "it is a folder, device or pipe", "replace it with a regular file");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) {
    return bad_input(
        what + " '" + path.string() + "' is too large",
        std::to_string(size) + " bytes; at most " + std::to_string(max_bytes) + " are read",
        "this is not a real " + what + "; check the file");
  }
  std::string text(static_cast<size_t>(size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n =
        ::pread(fd.get(), text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read", path, errno);
    }
    if (n == 0) break;  // shrank while reading: parse what is there, the parser complains
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return text;
}

}  // namespace qforge::checkpoint
