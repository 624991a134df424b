// CheckpointWriter: shards are created at full size with final headers, tensors are pwritten to
// their offsets from any thread, and commit() publishes the temporary folder under the final
// name in one rename (docs/safetensors.md "Writing").
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <system_error>
#include <unordered_map>

#include "checkpoint/posix_io.hpp"
#include "checkpoint/shard_plan.hpp"
#include "checkpoint/temp_names.hpp"
#include "qforge/checkpoint.hpp"
#include "qforge/logging.hpp"

namespace qforge {

namespace fs = std::filesystem;
using checkpoint::Fd;

namespace {

#ifndef RENAME_NOREPLACE
constexpr unsigned kRenameNoReplace = 1u << 0;
#else
constexpr unsigned kRenameNoReplace = RENAME_NOREPLACE;
#endif
#ifndef RENAME_EXCHANGE
constexpr unsigned kRenameExchange = 1u << 1;
#else
constexpr unsigned kRenameExchange = RENAME_EXCHANGE;
#endif

constexpr int kPending = 0, kWriting = 1, kWritten = 2;

int renameat2_raw(const fs::path& from, const fs::path& to, unsigned flags) {
#ifdef SYS_renameat2
  return static_cast<int>(
      ::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
#else
  (void)from;
  (void)to;
  (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

// renameat2 flags are refused by some file systems (EINVAL) and old kernels (ENOSYS).
bool flags_unsupported(int err) { return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP; }

Error output_error(const fs::path& out_dir, const std::string& problem, std::string why,
                   std::string fix) {
  return usage_error("cannot write the checkpoint to '" + out_dir.string() + "': " + problem,
                     std::move(why), std::move(fix));
}

// IO6: everything about the output location that can be checked before heavy work.
Status check_output_location(const fs::path& out_dir, bool overwrite) {
  std::error_code ec;
  const fs::path parent = out_dir.parent_path();
  const fs::file_status parent_status = fs::status(parent, ec);
  if (!fs::exists(parent_status)) {
    return output_error(out_dir, "its parent folder does not exist",
                        "'" + parent.string() + "' is missing", "create the parent folder first");
  }
  if (!fs::is_directory(parent_status)) {
    return output_error(out_dir, "its parent is not a folder",
                        "'" + parent.string() + "' is a file", "choose another output path");
  }
  const fs::file_status status = fs::symlink_status(out_dir, ec);
  if (fs::exists(status)) {
    if (fs::is_symlink(status)) {
      return output_error(out_dir, "it is a symbolic link",
                          "replacing it would swap the link, not the folder it points to",
                          "pass the real folder path");
    }
    if (!fs::is_directory(status)) {
      return output_error(out_dir, "it exists and is not a folder",
                          "a checkpoint is a folder; a file of that name is in the way",
                          "remove the file or choose another output path");
    }
    if (!overwrite) {
      return output_error(out_dir, "it already exists",
                          "an existing output is replaced only when asked",
                          "pass --force to replace it, or choose another output path");
    }
  }
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    const int err = errno;
    return output_error(out_dir, "its parent folder is not writable",
                        "'" + parent.string() + "': " + std::strerror(err),
                        "choose a writable location or fix the permissions");
  }
  return ok_status();
}

bool process_alive(long pid) {
  if (pid <= 0) return true;  // unparsable: leave it alone
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;
}

// IO1: a killed writer leaves its temporary folder; the next create() for the same output
// removes the ones whose process is gone.
void remove_stale_temporaries(const fs::path& parent, const std::string& out_name) {
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const long pid = checkpoint::temp_name_pid(name, out_name);
    if (pid < 0 || pid == static_cast<long>(::getpid()) || process_alive(pid)) continue;
    std::error_code rm_ec;
    fs::remove_all(it->path(), rm_ec);
    if (rm_ec) {
      get_logger("host.io")->warn("could not remove stale temporary '{}': {}", it->path().string(),
                                  rm_ec.message());
    } else {
      get_logger("host.io")->info("removed stale temporary '{}'", it->path().string());
    }
  }
}

Result<Fd> create_file(const fs::path& path, const std::shared_ptr<WriterFaults>& faults) {
  QF_RETURN_IF_ERROR(checkpoint::consult_faults(faults, "create", path));
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (!fd.valid()) return checkpoint::io_error("create", path, errno);
  return fd;
}

// Reserves the shard's blocks up front so a full disk fails here, before any tensor work
// (IO2); file systems without fallocate get a sparse file instead.
Status size_file(int fd, uint64_t size, const fs::path& path,
                 const std::shared_ptr<WriterFaults>& faults) {
  QF_RETURN_IF_ERROR(checkpoint::consult_faults(faults, "truncate", path));
  if (size == 0) return ok_status();
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0) return ok_status();
  const int err = errno;
  if (err != EOPNOTSUPP && err != ENOSYS && err != EINVAL)
    return checkpoint::io_error("allocate", path, err);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
    return checkpoint::io_error("truncate", path, errno);
  return ok_status();
}

bool plain_relative_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

struct CheckpointWriter::Impl {
  fs::path out_dir;
  fs::path tmp_dir;
  WriterOptions options;
  checkpoint::ShardPlan plan;
  std::vector<Fd> fds;  // one per shard, open until commit
  std::unordered_map<std::string, size_t> by_name;
  std::unique_ptr<std::atomic<int>[]> state;
  std::mutex files_mutex;                // guards extra_files
  std::vector<std::string> extra_files;  // add_file / copy_file names
  bool committed = false;

  ~Impl() {
    if (committed || tmp_dir.empty()) return;
    fds.clear();
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
  }

  fs::path tmp_path(const std::string& name) const { return tmp_dir / name; }

  Status check_new_file_name(const std::string& name) {
    if (!plain_relative_name(name)) {
      return bad_input("cannot add file '" + name + "' to the checkpoint",
                       "only plain file names directly in the output folder are allowed",
                       "use a name such as \"tokenizer.json\"");
    }
    const bool reserved =
        name == plan.index_file_name ||
        std::any_of(plan.shards.begin(), plan.shards.end(),
                    [&](const checkpoint::PlannedShard& s) { return s.file_name == name; });
    if (reserved || std::find(extra_files.begin(), extra_files.end(), name) != extra_files.end()) {
      return bad_input("cannot add file '" + name + "' to the checkpoint",
                       "a file of that name is already part of the output",
                       "add each file once; weight files are written by the writer itself");
    }
    return ok_status();
  }

  Status publish();
};

CheckpointWriter::CheckpointWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CheckpointWriter::~CheckpointWriter() = default;

Result<std::unique_ptr<CheckpointWriter>> CheckpointWriter::create(const fs::path& out_dir,
                                                                   std::vector<OutputTensor> layout,
                                                                   WriterOptions options) {
  std::error_code ec;
  fs::path out = fs::absolute(out_dir, ec).lexically_normal();
  if (ec) out = out_dir.lexically_normal();
  if (!out.has_filename() && out.has_parent_path() && out != out.root_path())
    out = out.parent_path();
  const std::string out_name = out.filename().string();
  if (out_name.empty() || out_name == "." || out_name == ".." || out == out.root_path()) {
    return output_error(out, "it names no folder", "the output must be a folder path",
                        "pass a path such as ./model-nf4");
  }
  QF_RETURN_IF_ERROR(check_output_location(out, options.overwrite));
  auto plan = checkpoint::plan_shards(layout, options.max_shard_bytes, options.weights_name);
  if (!plan.ok()) return plan.error();

  auto impl = std::make_unique<Impl>();
  impl->out_dir = out;
  impl->options = std::move(options);
  impl->plan = std::move(plan).value();
  const auto& faults = impl->options.faults;
  const size_t n = impl->plan.tensors.size();
  impl->state = std::make_unique<std::atomic<int>[]>(n);
  for (size_t i = 0; i < n; ++i) {
    impl->state[i].store(kPending);
    impl->by_name.emplace(impl->plan.tensors[i].spec.name, i);
  }

  remove_stale_temporaries(out.parent_path(), out_name);
  const fs::path tmp = out.parent_path() / checkpoint::make_temp_name(out_name, "tmp");
  QF_RETURN_IF_ERROR(checkpoint::consult_faults(faults, "mkdir", tmp));
  if (::mkdir(tmp.c_str(), 0777) != 0) return checkpoint::io_error("create folder", tmp, errno);
  impl->tmp_dir = tmp;  // from here on the Impl destructor removes it on failure

  for (const checkpoint::PlannedShard& shard : impl->plan.shards) {
    const fs::path path = impl->tmp_path(shard.file_name);
    auto fd = create_file(path, faults);
    if (!fd.ok()) return fd.error();
    QF_RETURN_IF_ERROR(size_file(fd.value().get(), shard.file_size, path, faults));
    QF_RETURN_IF_ERROR(checkpoint::pwrite_all(fd.value().get(), shard.prefix.data(),
                                              shard.prefix.size(), 0, path, faults));
    impl->fds.push_back(std::move(fd).value());
  }
  return std::unique_ptr<CheckpointWriter>(new CheckpointWriter(std::move(impl)));
}

std::string CheckpointWriter::shard_of(const std::string& tensor_name) const {
  const auto it = impl_->by_name.find(tensor_name);
  if (it == impl_->by_name.end()) return "";
  return impl_->plan.shards[impl_->plan.tensors[it->second].shard].file_name;
}

int CheckpointWriter::shard_count() const noexcept {
  return static_cast<int>(impl_->plan.shards.size());
}

Status CheckpointWriter::write(const std::string& name, const void* data, size_t nbytes) {
  const auto it = impl_->by_name.find(name);
  if (it == impl_->by_name.end()) {
    return bad_input("cannot write tensor '" + name + "'", "it is not in the checkpoint layout",
                     "declare every output tensor when creating the writer");
  }
  const checkpoint::PlannedTensor& t = impl_->plan.tensors[it->second];
  if (nbytes != t.nbytes) {
    return bad_input(
        "cannot write tensor '" + name + "'",
        std::to_string(nbytes) + " bytes given, the layout needs " + std::to_string(t.nbytes),
        "pass the tensor's full contiguous data");
  }
  if (nbytes != 0 && data == nullptr) {
    return bad_input("cannot write tensor '" + name + "'", "data is null", "pass the tensor data");
  }
  std::atomic<int>& state = impl_->state[it->second];
  int expected = kPending;
  if (!state.compare_exchange_strong(expected, kWriting)) {
    return bad_input(
        "tensor '" + name + "' is written twice",
        expected == kWritten ? "it was already written" : "another thread is writing it",
        "write each tensor once");
  }
  const fs::path path = impl_->tmp_path(impl_->plan.shards[t.shard].file_name);
  Status written = checkpoint::pwrite_all(impl_->fds[t.shard].get(), data, nbytes, t.file_offset,
                                          path, impl_->options.faults);
  state.store(written.ok() ? kWritten : kPending);
  return written;
}

Status CheckpointWriter::write(const std::string& name, const TensorView& tensor) {
  const auto it = impl_->by_name.find(name);
  if (it != impl_->by_name.end()) {
    const OutputTensor& spec = impl_->plan.tensors[it->second].spec;
    if (!dtype_equal(spec.dtype, tensor.dtype()) || spec.shape != tensor.shape()) {
      return bad_input("cannot write tensor '" + name + "'",
                       "the view is " + dtype_to_string(tensor.dtype()) + " with " +
                           std::to_string(tensor.shape().size()) + " dims; the layout says " +
                           dtype_to_string(spec.dtype) + " with " +
                           std::to_string(spec.shape.size()) + " dims (or the sizes differ)",
                       "write the tensor the layout declares");
    }
  }
  return write(name, tensor.data(), tensor.nbytes());
}

Status CheckpointWriter::add_file(const std::string& relative_name, const std::string& content) {
  std::lock_guard<std::mutex> lock(impl_->files_mutex);
  QF_RETURN_IF_ERROR(impl_->check_new_file_name(relative_name));
  const fs::path path = impl_->tmp_path(relative_name);
  auto fd = create_file(path, impl_->options.faults);
  if (!fd.ok()) return fd.error();
  impl_->extra_files.push_back(relative_name);
  QF_RETURN_IF_ERROR(checkpoint::pwrite_all(fd.value().get(), content.data(), content.size(), 0,
                                            path, impl_->options.faults));
  return checkpoint::fsync_fd(fd.value().get(), path, impl_->options.faults);
}

Status CheckpointWriter::copy_file(const fs::path& source, const std::string& relative_name) {
  std::lock_guard<std::mutex> lock(impl_->files_mutex);
  QF_RETURN_IF_ERROR(impl_->check_new_file_name(relative_name));
  Fd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) {
    const int err = errno;
    return bad_input("cannot copy '" + source.string() + "' into the checkpoint",
                     std::strerror(err), "check that the file exists and is readable");
  }
  const fs::path path = impl_->tmp_path(relative_name);
  auto out = create_file(path, impl_->options.faults);
  if (!out.ok()) return out.error();
  impl_->extra_files.push_back(relative_name);
  std::vector<char> buffer(size_t{1} << 20);
  uint64_t offset = 0;
  for (;;) {
    const ssize_t got = ::read(in.get(), buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return checkpoint::io_error("read", source, errno);
    }
    if (got == 0) break;
    QF_RETURN_IF_ERROR(checkpoint::pwrite_all(out.value().get(), buffer.data(),
                                              static_cast<size_t>(got), offset, path,
                                              impl_->options.faults));
    offset += static_cast<uint64_t>(got);
  }
  return checkpoint::fsync_fd(out.value().get(), path, impl_->options.faults);
}

// The only step that touches out_dir: one rename (or exchange) of the finished folder.
Status CheckpointWriter::Impl::publish() {
  const auto& faults = options.faults;
  std::error_code ec;
  const bool replacing = fs::exists(fs::symlink_status(out_dir, ec));
  if (replacing && !options.overwrite) {
    return output_error(out_dir, "it appeared while the checkpoint was being written",
                        "another process created it", "pass --force to replace it");
  }
  QF_RETURN_IF_ERROR(checkpoint::consult_faults(faults, "rename", out_dir));
  if (!replacing) {
    if (renameat2_raw(tmp_dir, out_dir, kRenameNoReplace) != 0) {
      const int err = errno;
      if (!flags_unsupported(err)) return checkpoint::io_error("rename to", out_dir, err);
      if (::rename(tmp_dir.c_str(), out_dir.c_str()) != 0) {
        return checkpoint::io_error("rename to", out_dir, errno);
      }
    }
    tmp_dir.clear();
    return ok_status();
  }
  fs::path old_tree;
  if (renameat2_raw(tmp_dir, out_dir, kRenameExchange) == 0) {
    old_tree = tmp_dir;  // the exchange left the previous output under the temporary name
  } else {
    const int err = errno;
    if (!flags_unsupported(err)) return checkpoint::io_error("replace", out_dir, err);
    // No atomic exchange here: move the old output aside first, so a failure in between
    // still leaves it complete (under the aside name, restored below when possible).
    old_tree =
        out_dir.parent_path() / checkpoint::make_temp_name(out_dir.filename().string(), "old");
    if (::rename(out_dir.c_str(), old_tree.c_str()) != 0) {
      return checkpoint::io_error("move aside", out_dir, errno);
    }
    Status moved = checkpoint::rename_path(tmp_dir, out_dir, faults);
    if (!moved.ok()) {
      if (::rename(old_tree.c_str(), out_dir.c_str()) != 0) {
        get_logger("host.io")->error("the previous output is kept at '{}'", old_tree.string());
      }
      return moved;
    }
  }
  tmp_dir.clear();
  fs::remove_all(old_tree, ec);
  if (ec) {
    get_logger("host.io")->warn("could not remove the previous output at '{}': {}",
                                old_tree.string(), ec.message());
  }
  return ok_status();
}

Result<WriteSummary> CheckpointWriter::commit() {
  Impl& impl = *impl_;
  if (impl.committed || impl.tmp_dir.empty()) {
    return bad_input("checkpoint already committed", "commit() runs once", "create a new writer");
  }
  std::vector<std::string> missing;
  size_t missing_count = 0;
  for (size_t i = 0; i < impl.plan.tensors.size(); ++i) {
    if (impl.state[i].load() != kWritten) {
      ++missing_count;
      if (missing.size() < 5) missing.push_back(impl.plan.tensors[i].spec.name);
    }
  }
  if (missing_count != 0) {
    std::string list;
    for (const std::string& name : missing) list += (list.empty() ? "'" : ", '") + name + "'";
    if (missing_count > missing.size()) list += ", ...";
    return internal_error("cannot commit the checkpoint: " + std::to_string(missing_count) +
                              " tensor(s) were not written",
                          "missing: " + list);
  }
  const auto& faults = impl.options.faults;
  for (size_t s = 0; s < impl.fds.size(); ++s) {
    QF_RETURN_IF_ERROR(checkpoint::fsync_fd(impl.fds[s].get(),
                                            impl.tmp_path(impl.plan.shards[s].file_name), faults));
  }
  impl.fds.clear();
  // Written last, after every shard is durable: an index never names an incomplete shard.
  if (!impl.plan.index_file_name.empty()) {
    const fs::path path = impl.tmp_path(impl.plan.index_file_name);
    auto fd = create_file(path, faults);
    if (!fd.ok()) return fd.error();
    QF_RETURN_IF_ERROR(checkpoint::pwrite_all(fd.value().get(), impl.plan.index_json.data(),
                                              impl.plan.index_json.size(), 0, path, faults));
    QF_RETURN_IF_ERROR(checkpoint::fsync_fd(fd.value().get(), path, faults));
  }
  QF_RETURN_IF_ERROR(checkpoint::fsync_dir(impl.tmp_dir, faults));
  QF_RETURN_IF_ERROR(impl.publish());
  impl.committed = true;
  // The new output is in place; a failed parent fsync only means it may not survive a crash.
  QF_RETURN_IF_ERROR(checkpoint::fsync_dir(impl.out_dir.parent_path(), faults));

  WriteSummary summary;
  for (const auto& shard : impl.plan.shards)
    summary.files.push_back(impl.out_dir / shard.file_name);
  if (!impl.plan.index_file_name.empty()) {
    summary.files.push_back(impl.out_dir / impl.plan.index_file_name);
  }
  for (const std::string& name : impl.extra_files) summary.files.push_back(impl.out_dir / name);
  summary.tensor_bytes = impl.plan.total_bytes;
  summary.shards = static_cast<int>(impl.plan.shards.size());
  return summary;
}

}  // namespace qforge
