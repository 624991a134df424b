// write_file_atomically and dump_config_json: the small-file half of checkpoint writing.
#include <fcntl.h>
#include <unistd.h>

#include <system_error>

#include "checkpoint/posix_io.hpp"
#include "checkpoint/temp_names.hpp"
#include "qforge/checkpoint.hpp"

namespace qforge {

namespace fs = std::filesystem;

Status write_file_atomically(const fs::path& path, const std::string& content,
                             const std::shared_ptr<WriterFaults>& faults) {
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const std::string name = path.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return usage_error("cannot write '" + path.string() + "'", "the path names no file",
                       "pass a file path");
  }
  const fs::path tmp = parent / checkpoint::make_temp_name(name, "tmp");
  QF_RETURN_IF_ERROR(checkpoint::consult_faults(faults, "create", tmp));
  checkpoint::Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (!fd.valid()) return checkpoint::io_error("create", tmp, errno);
  Status status = checkpoint::pwrite_all(fd.get(), content.data(), content.size(), 0, tmp, faults);
  if (status.ok()) status = checkpoint::fsync_fd(fd.get(), tmp, faults);
  fd.reset();
  if (status.ok()) status = checkpoint::rename_path(tmp, path, faults);
  if (!status.ok()) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return status;
  }
  return checkpoint::fsync_dir(parent, faults);
}

std::string dump_config_json(const nlohmann::json& config) {
  // transformers: json.dumps(config, indent=2, sort_keys=True) + "\n". nlohmann objects are
  // sorted by key already; ensure_ascii matches Python's default escaping of non-ASCII text.
  return config.dump(2, ' ', true, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace qforge
