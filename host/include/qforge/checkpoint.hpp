// Checkpoints: HuggingFace model folders (config.json + safetensors, sharded through
// model.safetensors.index.json) read zero-copy from mmap, and written atomically.
//
// Reading validates everything in the file before any tensor is handed out (RELIABILITY.md
// ST1-ST20): every size computed from file data is overflow-checked, offsets must tile the data
// section exactly, duplicate names and zero-size offset tricks are rejected, and no path from an
// index may leave the model folder. Errors are bad_input (exit code 4) naming file and tensor.
//
// Writing (CheckpointWriter) knows every output tensor's name, dtype and shape up front (the plan
// does), so shard headers are final before the first byte of data and tensors may be written in
// any order, from any thread, straight to their offsets. Nothing appears under the final name
// until commit() succeeds; a writer destroyed without commit removes everything it created.
//
// Thread-safety: a Checkpoint is immutable after open and may be shared; TensorViews keep their
// mapping alive on their own. CheckpointWriter::write may run concurrently for different tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/error.hpp"
#include "qforge/tensor.hpp"

namespace qforge {

// ------------------------------------------------------------------ reading

struct SafetensorsLimits {
  uint64_t max_header_bytes = 100'000'000;  // the reference reader's cap (ST2)
  uint64_t max_tensors = 1'000'000;         // ST15: bounded work per header
  size_t max_json_depth = 64;               // ST5: nested arrays/objects in the header
};

// One tensor as a safetensors header describes it, after validation.
struct TensorInfo {
  std::string name;
  DLDataType dtype{};
  std::string dtype_name;  // as in the file: "BF16", "F8_E4M3", ...
  std::vector<int64_t> shape;
  std::filesystem::path file;  // the safetensors file holding it
  uint64_t file_offset = 0;    // absolute byte offset of its data in `file`
  uint64_t nbytes = 0;
};

// A parsed, validated safetensors header (no data access). Exposed for the fuzzer and tests.
struct SafetensorsHeader {
  uint64_t header_bytes = 0;                    // N, the JSON length
  std::map<std::string, std::string> metadata;  // __metadata__ (string -> string only)
  std::vector<TensorInfo> tensors;              // in data-offset order; `file` left empty
};
// Validates the first bytes of a safetensors file (8-byte length + header) against a file of
// `file_size` bytes. Needs only the prefix [0, 8 + N); never reads past `size`.
Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* data, size_t size,
                                                   uint64_t file_size,
                                                   const SafetensorsLimits& limits = {});

// One mapped .safetensors file. Shared ownership: views keep it mapped.
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  static Result<std::shared_ptr<const SafetensorsFile>> open(const std::filesystem::path& path,
                                                             const SafetensorsLimits& limits = {});
  const std::filesystem::path& path() const noexcept;
  const std::vector<TensorInfo>& tensors() const noexcept;
  const std::map<std::string, std::string>& metadata() const noexcept;
  const TensorInfo* find(const std::string& name) const noexcept;
  // Zero-copy view into the mapping; keeps the file mapped while the view lives.
  Result<TensorView> view(const std::string& name) const;
  // Drops the tensor's pages from this process's resident set (MADV_DONTNEED on a read-only
  // private file mapping: a later access faults them in again from the page cache, so views
  // stay valid). Streaming calls it after each module so peak RSS stays near one module, not
  // the whole model. Unknown names are ignored.
  void release(const std::string& name) const noexcept;
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

 private:
  struct Impl;
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A model folder (or a single .safetensors file). Opening reads config.json (strict JSON:
// duplicate keys, BOM, depth > 64 rejected), then the weights: model.safetensors when present
// (transformers loads it before any index), else model.safetensors.index.json (every shard must
// lie in the folder: no "..", no absolute path, no symlink leaving it except into the HF cache's
// blobs; every tensor in exactly one shard; every listed shard present and used), then each
// shard's header. Tensor data is mapped,
// never read, until a view is touched.
class Checkpoint {
 public:
  static Result<Checkpoint> open(const std::filesystem::path& dir_or_file,
                                 const SafetensorsLimits& limits = {});
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  const std::filesystem::path& root() const noexcept;  // the folder
  // config.json as an object; an empty object when opened from a bare .safetensors file.
  const nlohmann::json& config() const noexcept;
  bool has_config_file() const noexcept;
  // config["quantization_config"] when present (the checkpoint is pre-quantized).
  std::optional<nlohmann::json> quantization_config() const;
  // Every tensor of every shard, sorted by name.
  const std::vector<TensorInfo>& tensors() const noexcept;
  const TensorInfo* find(const std::string& name) const noexcept;
  Result<TensorView> view(const std::string& name) const;
  // SafetensorsFile::release for the shard holding `name`.
  void release(const std::string& name) const noexcept;
  // The shard files in index order (one entry for an unsharded checkpoint).
  std::vector<std::filesystem::path> shard_files() const;
  uint64_t total_tensor_bytes() const noexcept;
  // Files in the folder that are neither weights nor config.json nor the index
  // (tokenizer.json, generation_config.json, ...): a writer copies them to the output.
  std::vector<std::filesystem::path> companion_files() const;

 private:
  struct Impl;
  explicit Checkpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------------ writing

// "5GB" -> 5'000'000'000, "500MB", "10GiB", "1024" (bytes): transformers'
// convert_file_size_to_int. Errors name the text.
Result<uint64_t> parse_shard_size(const std::string& text);

struct OutputTensor {
  std::string name;
  DLDataType dtype{};
  std::vector<int64_t> shape;
};

// Where a fault-injection test hooks in (RELIABILITY IO2/IO3): called before every write,
// fsync and rename the writer does; returning an error makes that operation fail as if the
// system call had failed. Never set in production. `operation` is one of "mkdir", "create",
// "truncate" (sizing a shard), "write" (one pwrite of at most 64 MiB), "fsync" (files and
// folders) and "rename" (publishing); `path` is the file or folder concerned.
struct WriterFaults {
  std::function<Status(const std::string& operation, const std::filesystem::path& path)> before;
};

struct WriterOptions {
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default "5GB"
  bool overwrite = false;                    // replace an existing output folder (--force)
  std::string weights_name = "model";        // model.safetensors / model-00001-of-00003...
  std::shared_ptr<WriterFaults> faults;
};

struct WriteSummary {
  std::vector<std::filesystem::path> files;  // final paths, index and config included
  uint64_t tensor_bytes = 0;
  int shards = 0;
};

// Writes a checkpoint folder atomically. Layout: everything goes into a fresh temporary folder
// next to `out_dir` (".<name>.qforge-tmp-<pid>-<n>"), each file fsynced, the folder fsynced,
// then renamed over `out_dir` (an existing output is swapped out with renameat2(RENAME_EXCHANGE)
// and removed only after the new one is in place), and the parent folder fsynced. So `out_dir`
// always holds either the previous complete output or the new complete output. Stale temporary
// folders of dead processes next to `out_dir` are removed by the next create().
//
// Shards follow transformers: tensors fill shards in the order given, a new shard starts when
// the next tensor would pass max_shard_bytes (a bigger tensor gets a shard of its own); one
// shard is "model.safetensors", several are "model-0000i-of-0000n.safetensors" plus
// "model.safetensors.index.json" (metadata.total_size, weight_map sorted), written last. Each
// shard's header: tensors ordered by alignment then name, {"__metadata__":{"format":"pt"}}
// first, space-padded to a multiple of 8 bytes.
class CheckpointWriter {
 public:
  // Checks out_dir before any heavy work (IO6: parent missing, not writable, out_dir is a
  // file, exists without overwrite), validates the layout (unique names, known dtypes, sizes
  // overflow-checked), creates the temporary folder and every shard at its full size with its
  // header written.
  static Result<std::unique_ptr<CheckpointWriter>> create(const std::filesystem::path& out_dir,
                                                          std::vector<OutputTensor> layout,
                                                          WriterOptions options = {});
  ~CheckpointWriter();  // without a successful commit: removes the temporary folder
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Shard file name (final, relative) each tensor goes to, known right after create().
  std::string shard_of(const std::string& tensor_name) const;
  int shard_count() const noexcept;

  // Writes one tensor's bytes (contiguous, nbytes must match the layout). Thread-safe for
  // different tensors; writing a tensor twice is an error.
  Status write(const std::string& name, const void* data, size_t nbytes);
  Status write(const std::string& name, const TensorView& tensor);
  // Adds a small file (config.json, ...) by content, or copies one (tokenizer files).
  Status add_file(const std::string& relative_name, const std::string& content);
  Status copy_file(const std::filesystem::path& source, const std::string& relative_name);

  // Fails when a tensor was not written. Then fsyncs, writes the index, renames, cleans up.
  Result<WriteSummary> commit();

 private:
  struct Impl;
  explicit CheckpointWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes one file atomically (temp name in the same folder, fsync, rename, fsync folder).
Status write_file_atomically(const std::filesystem::path& path, const std::string& content,
                             const std::shared_ptr<WriterFaults>& faults = nullptr);

// config.json text as transformers writes it: json.dumps(indent=2, sort_keys=True) + "\n".
std::string dump_config_json(const nlohmann::json& config);

}  // namespace qforge
