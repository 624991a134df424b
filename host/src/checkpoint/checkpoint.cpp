// Checkpoint::open: a model folder (config.json + safetensors, sharded through
// model.safetensors.index.json) or one bare .safetensors file. Weight discovery follows
// transformers (docs/safetensors.md "Model folders").
#include "qforge/checkpoint.hpp"

#include <algorithm>
#include <set>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "checkpoint/checkpoint_internal.hpp"
#include "checkpoint/model_folder.hpp"
#include "checkpoint/posix_io.hpp"
#include "qforge/logging.hpp"

namespace qforge {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kConfigName = "config.json";
constexpr const char* kWeightsName = "model.safetensors";
constexpr const char* kIndexName = "model.safetensors.index.json";
// An index lists every tensor by name; the largest public models stay well under this.
constexpr uint64_t kMaxIndexBytes = uint64_t{64} << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Shard {
  std::string name;  // file name in the folder
  std::shared_ptr<const SafetensorsFile> file;
};

// Checkpoint::Impl's members; a plain struct so the helpers below can name it.
struct CheckpointData {
  fs::path root;
  json config = json::object();
  bool has_config = false;
  bool bare_file = false;
  std::optional<checkpoint::ModelFolder> folder;
  std::vector<Shard> shards;
  std::vector<TensorInfo> tensors;  // sorted by name
  std::vector<size_t> owner;        // shard index of tensors[i]
  uint64_t total_bytes = 0;
};

Result<json> read_json_file(const fs::path& path, uint64_t max_bytes, const std::string& role) {
  auto text = checkpoint::read_small_file(path, max_bytes, role);
  if (!text.ok()) return text.error();
  auto parsed = checkpoint::parse_json_document(text.value(), path.string(), 64);
  if (!parsed.ok()) return parsed.error();
  if (!parsed.value().is_object()) {
    return bad_input(role + " '" + path.string() + "' is not a JSON object",
                     std::string("its top level is ") + parsed.value().type_name(),
                     "the file must hold one JSON object {...}");
  }
  return std::move(parsed).value();
}

// weight_map of the index: tensor -> shard file name, validated for shape only; the file names
// are resolved (and refused when they leave the folder) by the caller.
Result<std::map<std::string, std::string>> read_index(const fs::path& path) {
  auto index = read_json_file(path, kMaxIndexBytes, "index");
  if (!index.ok()) return index.error();
  const json& root = index.value();
  const std::string shown = "index '" + path.string() + "'";
  if (!root.contains("weight_map") || !root["weight_map"].is_object()) {
    return bad_input(shown + " has no weight_map object",
                     "model.safetensors.index.json maps each tensor name to its shard file in "
                     "\"weight_map\"",
                     "re-export the checkpoint");
  }
  if (root.contains("metadata") && !root["metadata"].is_object()) {
    return bad_input(shown + ": metadata is not an object",
                     std::string("it is ") + root["metadata"].type_name(),
                     "re-export the checkpoint");
  }
  std::map<std::string, std::string> map;
  for (const auto& item : root["weight_map"].items()) {
    if (!item.value().is_string()) {
      return bad_input(shown + ": weight_map entry '" + item.key() + "' is not a file name",
                       std::string("it is ") + item.value().type_name(),
                       "each weight_map value is a shard file name");
    }
    map.emplace(item.key(), item.value().get<std::string>());
  }
  if (map.empty()) {
    return bad_input(shown + " lists no tensors", "weight_map is empty",
                     "re-export the checkpoint");
  }
  return map;
}

// Which weight files to open, by transformers' rule: model.safetensors, else the index, else
// the only *.safetensors file. Returns the shard names and the weight_map (empty when unsharded).
Status discover_weights(const checkpoint::ModelFolder& folder, std::vector<std::string>& shards,
                        std::map<std::string, std::string>& weight_map) {
  const std::vector<std::string> files = folder.list_files();
  std::error_code ec;
  if (fs::exists(folder.root() / kWeightsName, ec)) {
    shards = {kWeightsName};
    return ok_status();
  }
  if (fs::exists(folder.root() / kIndexName, ec)) {
    auto index_path = folder.resolve(kIndexName, "index");
    if (!index_path.ok()) return index_path.error();
    auto map = read_index(index_path.value());
    if (!map.ok()) return map.error();
    weight_map = std::move(map).value();
    std::set<std::string> names;
    for (const auto& [tensor, file] : weight_map) names.insert(file);
    shards.assign(names.begin(), names.end());
    return ok_status();
  }
  std::vector<std::string> candidates;
  bool has_bin = false;
  for (const std::string& name : files) {
    if (ends_with(name, ".safetensors")) candidates.push_back(name);
    if (ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth"))
      has_bin = true;
  }
  if (candidates.size() == 1) {
    shards = candidates;
    return ok_status();
  }
  const std::string where = "'" + folder.root().string() + "'";
  if (candidates.empty()) {
    return bad_input("no safetensors weights in " + where,
                     std::string("there is no model.safetensors, no ") + kIndexName +
                         " and no other .safetensors file" +
                         (has_bin ? "; only PyTorch pickle weights (.bin/.pt), which qforge "
                                    "does not read"
                                  : ""),
                     "point qforge at a Hugging Face model folder with safetensors weights");
  }
  std::string list;
  for (const std::string& c : candidates) list += (list.empty() ? "" : ", ") + c;
  return bad_input("several .safetensors files in " + where + " and no index",
                   "found " + list + "; without " + std::string(kIndexName) +
                       " it is unclear which hold the model",
                   "add model.safetensors.index.json or remove the extra files");
}

// Every tensor in exactly one shard, and where the index says (ST19).
Status check_against_index(const std::map<std::string, std::string>& weight_map,
                           const std::vector<Shard>& shards) {
  std::unordered_map<std::string, const std::string*> seen;  // tensor -> shard name
  for (const Shard& shard : shards) {
    for (const TensorInfo& t : shard.file->tensors()) {
      const auto [it, inserted] = seen.emplace(t.name, &shard.name);
      if (!inserted) {
        return bad_input("tensor '" + t.name + "' is in two shards",
                         "both '" + *it->second + "' and '" + shard.name + "' hold it",
                         "re-export the checkpoint; a tensor must be stored once");
      }
      const auto listed = weight_map.find(t.name);
      if (listed == weight_map.end()) {
        return bad_input(
            "shard '" + shard.name + "' holds tensor '" + t.name + "' that the index does not list",
            "model.safetensors.index.json has no weight_map entry for it", "regenerate the index");
      }
      if (listed->second != shard.name) {
        return bad_input("tensor '" + t.name + "' is in shard '" + shard.name +
                             "' but the index maps it to '" + listed->second + "'",
                         "the index and the shard headers disagree", "regenerate the index");
      }
    }
  }
  for (const auto& [tensor, file] : weight_map) {
    if (seen.find(tensor) == seen.end()) {
      return bad_input("tensor '" + tensor + "' listed in the index is in no shard",
                       "the index maps it to '" + file + "', which does not hold it",
                       "re-download the shards or regenerate the index");
    }
  }
  return ok_status();
}

Status load_config(CheckpointData& impl) {
  std::error_code ec;
  if (!fs::exists(impl.root / kConfigName, ec)) return ok_status();
  auto path = impl.folder->resolve(kConfigName, kConfigName);
  if (!path.ok()) return path.error();
  auto config = read_json_file(path.value(), checkpoint::kMaxJsonFileBytes, kConfigName);
  if (!config.ok()) return config.error();
  impl.config = std::move(config).value();
  impl.has_config = true;
  return ok_status();
}

void index_tensors(CheckpointData& impl) {
  std::vector<std::pair<std::string, std::pair<size_t, size_t>>> order;  // name -> (shard, i)
  for (size_t s = 0; s < impl.shards.size(); ++s) {
    const auto& tensors = impl.shards[s].file->tensors();
    for (size_t i = 0; i < tensors.size(); ++i) order.push_back({tensors[i].name, {s, i}});
  }
  std::sort(order.begin(), order.end());
  impl.tensors.reserve(order.size());
  impl.owner.reserve(order.size());
  for (const auto& [name, where] : order) {
    TensorInfo info = impl.shards[where.first].file->tensors()[where.second];
    if (!impl.bare_file) info.file = impl.root / impl.shards[where.first].name;
    impl.total_bytes += info.nbytes;
    impl.tensors.push_back(std::move(info));
    impl.owner.push_back(where.first);
  }
}

}  // namespace

struct Checkpoint::Impl : CheckpointData {};

Checkpoint::Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

Result<Checkpoint> Checkpoint::open(const fs::path& dir_or_file, const SafetensorsLimits& limits) {
  std::error_code ec;
  const fs::file_status status = fs::status(dir_or_file, ec);
  if (ec || !fs::exists(status)) {
    return bad_input("model path '" + dir_or_file.string() + "' does not exist",
                     ec ? ec.message() : "no such file or folder",
                     "pass a Hugging Face model folder or a .safetensors file");
  }
  auto impl = std::make_unique<Impl>();
  if (!fs::is_directory(status)) {
    // A bare file the user named: it is opened as given; there is no folder to contain.
    impl->bare_file = true;
    impl->root = fs::absolute(dir_or_file, ec).lexically_normal().parent_path();
    auto file = SafetensorsFile::open(dir_or_file, limits);
    if (!file.ok()) return file.error();
    impl->shards.push_back({dir_or_file.filename().string(), std::move(file).value()});
    index_tensors(*impl);
    return Checkpoint(std::move(impl));
  }

  auto folder = checkpoint::ModelFolder::open(dir_or_file);
  if (!folder.ok()) return folder.error();
  impl->folder = std::move(folder).value();
  impl->root = impl->folder->root();
  QF_RETURN_IF_ERROR(load_config(*impl));

  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  QF_RETURN_IF_ERROR(discover_weights(*impl->folder, shard_names, weight_map));
  for (const std::string& name : shard_names) {
    auto path = impl->folder->resolve(name, "shard");
    if (!path.ok()) return path.error();
    auto file = SafetensorsFile::open(path.value(), limits);
    if (!file.ok()) return file.error();
    impl->shards.push_back({name, std::move(file).value()});
  }
  if (!weight_map.empty()) QF_RETURN_IF_ERROR(check_against_index(weight_map, impl->shards));
  index_tensors(*impl);
  return Checkpoint(std::move(impl));
}

const fs::path& Checkpoint::root() const noexcept { return impl_->root; }
const json& Checkpoint::config() const noexcept { return impl_->config; }
bool Checkpoint::has_config_file() const noexcept { return impl_->has_config; }

std::optional<json> Checkpoint::quantization_config() const {
  const auto it = impl_->config.find("quantization_config");
  if (it == impl_->config.end()) return std::nullopt;
  return *it;
}

const std::vector<TensorInfo>& Checkpoint::tensors() const noexcept { return impl_->tensors; }

const TensorInfo* Checkpoint::find(const std::string& name) const noexcept {
  const auto& tensors = impl_->tensors;
  const auto it =
      std::lower_bound(tensors.begin(), tensors.end(), name,
                       [](const TensorInfo& t, const std::string& key) { return t.name < key; });
  if (it == tensors.end() || it->name != name) return nullptr;
  return &*it;
}

Result<TensorView> Checkpoint::view(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) {
    return bad_input(
        "tensor '" + name + "' is not in the checkpoint '" + impl_->root.string() + "'",
        "it holds " + std::to_string(impl_->tensors.size()) + " tensors", "check the tensor name");
  }
  const size_t i = static_cast<size_t>(info - impl_->tensors.data());
  return impl_->shards[impl_->owner[i]].file->view(name);
}

void Checkpoint::release(const std::string& name) const noexcept {
  const TensorInfo* info = find(name);
  if (info == nullptr) return;
  const size_t i = static_cast<size_t>(info - impl_->tensors.data());
  impl_->shards[impl_->owner[i]].file->release(name);
}

std::vector<fs::path> Checkpoint::shard_files() const {
  std::vector<fs::path> files;
  for (const Shard& shard : impl_->shards) {
    files.push_back(impl_->bare_file ? shard.file->path() : impl_->root / shard.name);
  }
  return files;
}

uint64_t Checkpoint::total_tensor_bytes() const noexcept { return impl_->total_bytes; }

std::vector<fs::path> Checkpoint::companion_files() const {
  std::vector<fs::path> files;
  if (impl_->bare_file || !impl_->folder) return files;
  for (const std::string& name : impl_->folder->list_files()) {
    if (name == kConfigName || checkpoint::is_weight_file_name(name)) continue;
    // A companion is copied into the output: one that links outside the folder is skipped so
    // a crafted symlink cannot smuggle another file into it.
    auto resolved = impl_->folder->resolve(name, "file");
    if (!resolved.ok()) {
      get_logger("host.io")->warn("skipping '{}': {}", name, resolved.error().to_string());
      continue;
    }
    files.push_back(impl_->root / name);
  }
  return files;
}

}  // namespace qforge
