#include "checkpoint/model_folder.hpp"

#include <algorithm>
#include <system_error>

namespace qforge::checkpoint {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// `path` equals `base` or lies below it (both canonical).
bool is_within(const fs::path& path, const fs::path& base) {
  const fs::path rel = path.lexically_relative(base);
  if (rel.empty()) return false;
  const std::string first = rel.begin()->string();
  return first != "..";
}

}  // namespace

bool is_weight_file_name(const std::string& name) {
  static const char* const kSuffixes[] = {".safetensors", ".index.json", ".bin", ".pt",
                                          ".pth",         ".ckpt",       ".h5",  ".msgpack",
                                          ".onnx",        ".gguf",       ".pkl"};
  for (const char* suffix : kSuffixes) {
    if (ends_with(name, suffix)) return true;
  }
  return false;
}

Result<ModelFolder> ModelFolder::open(const fs::path& root) {
  std::error_code ec;
  ModelFolder folder;
  folder.root_ = fs::absolute(root, ec).lexically_normal();
  if (ec) folder.root_ = root.lexically_normal();
  if (folder.root_.has_filename() == false && folder.root_.has_parent_path() &&
      folder.root_ != folder.root_.root_path()) {
    folder.root_ = folder.root_.parent_path();  // drop a trailing separator
  }
  folder.real_root_ = fs::canonical(folder.root_, ec);
  if (ec) {
    return bad_input("cannot resolve model folder '" + folder.root_.string() + "'", ec.message(),
                     "check the path");
  }
  // Hugging Face's cache keeps <repo>/snapshots/<revision>/<file> as symlinks to
  // <repo>/blobs/<hash>; those links leave the snapshot folder by design.
  const fs::path parent = folder.real_root_.parent_path();
  if (parent.filename() == "snapshots") {
    const fs::path blobs = parent.parent_path() / "blobs";
    if (fs::is_directory(blobs, ec)) folder.blobs_ = fs::canonical(blobs, ec);
    if (ec) folder.blobs_.clear();
  }
  return folder;
}

Result<fs::path> ModelFolder::resolve(const std::string& name, const std::string& role) const {
  const std::string shown = role + " '" + name + "'";
  const std::string fix = "the index must name files that lie directly in the model folder";
  if (name.empty()) return bad_input(role + " name is empty", "an empty file name", fix);
  if (name.find('\0') != std::string::npos) {
    return bad_input(shown + " contains a NUL byte", "file names cannot hold NUL", fix);
  }
  const fs::path p(name);
  if (p.is_absolute() || name.front() == '/' || name.front() == '\\') {
    return bad_input(shown + " is an absolute path",
                     "only plain file names inside '" + root_.string() + "' are opened", fix);
  }
  for (const auto& part : p) {
    if (part == "..") {
      return bad_input(shown + " leaves the model folder through '..'",
                       "only plain file names inside '" + root_.string() + "' are opened", fix);
    }
  }
  if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos || name == ".") {
    return bad_input(shown + " is not a plain file name",
                     "sub-folders are not used by Hugging Face checkpoints; only files directly "
                     "in '" +
                         root_.string() + "' are opened",
                     fix);
  }
  const fs::path candidate = root_ / p;
  std::error_code ec;
  if (!fs::exists(candidate, ec)) {
    return bad_input(shown + " is missing", "'" + candidate.string() + "' does not exist",
                     "download the missing file or fix the index");
  }
  const fs::path real = fs::canonical(candidate, ec);
  if (ec) return bad_input("cannot resolve " + shown, ec.message(), "check the file");
  if (!is_within(real, real_root_) && (blobs_.empty() || !is_within(real, blobs_))) {
    return bad_input(
        shown + " resolves outside the model folder",
        "it is a symlink to '" + real.string() + "', outside '" + real_root_.string() + "'",
        "copy the file into the model folder instead of linking it");
  }
  return real;
}

std::vector<std::string> ModelFolder::list_files() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.front() == '.') continue;
    std::error_code type_ec;
    if (!fs::is_regular_file(it->path(), type_ec)) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace qforge::checkpoint
