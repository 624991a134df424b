// Which files of a model folder qforge may open, and which of them are weights. Every path that
// comes from file contents (the index) or from a folder listing is resolved and must stay inside
// the folder (RELIABILITY ST19); docs/safetensors.md "Model folders" states the rules.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "qforge/error.hpp"

namespace qforge::checkpoint {

class ModelFolder {
 public:
  // `root` must be an existing folder.
  static Result<ModelFolder> open(const std::filesystem::path& root);

  const std::filesystem::path& root() const noexcept { return root_; }

  // Checks that `name` (from an index or a listing) is a plain file name, then resolves
  // root/name through symlinks and refuses it unless it lands inside the folder (or, for a
  // Hugging Face cache snapshot, inside the repository's blobs/ folder). Returns the resolved
  // path, which is what gets opened. `role` names the file in errors ("shard", "config.json").
  Result<std::filesystem::path> resolve(const std::string& name, const std::string& role) const;

  // Regular, non-hidden files directly in the folder (symlinks followed), sorted by name.
  std::vector<std::string> list_files() const;

 private:
  std::filesystem::path root_;       // as given, absolute and lexically normal
  std::filesystem::path real_root_;  // canonical
  std::filesystem::path blobs_;      // canonical <repo>/blobs for an HF cache snapshot, else empty
};

// True for names that hold weights in some format (.safetensors, .bin, .pt, ...) or their index.
bool is_weight_file_name(const std::string& name);

}  // namespace qforge::checkpoint
