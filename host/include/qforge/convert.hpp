// Converting foreign model files into HuggingFace checkpoints: GGUF (llama.cpp) -> a model folder
// (config.json + safetensors) that transformers and the rest of qforge read.
//
// Reading validates the whole GGUF header before any tensor is touched (RELIABILITY.md 6.2):
// magic, version 2 or 3, counts bounded by the bytes that remain, key and string lengths, value
// types, duplicate keys and tensor names, general.alignment (UINT32, power of two, <= 65536),
// n_dims <= 4, no zero dimension, element-count and byte-size overflow, known tensor types,
// aligned offsets that neither overlap nor leave the file. Every failure is bad_input (exit
// code 4) whose `what` names the check, so tests and users can tell them apart.
//
// Conversion dequantizes F32, F16, BF16, Q8_0, Q4_0 and Q4_1 to fp32, undoes llama.cpp's rotary
// row permutation of attn_q / attn_k (convert_hf_to_gguf.py interleaves each head's two rotary
// halves; HF keeps them as halves), renames tensors to HF's Llama names, writes them in the
// requested dtype with CheckpointWriter and derives config.json from the llama.* metadata.
// Only general.architecture == "llama" is converted; other architectures are rejected by name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"
#include "qforge/tensor.hpp"

namespace qforge {

// GGUF metadata value types (gguf.md "gguf_metadata_value_type").
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* gguf_type_name(GgufType type) noexcept;

// ggml tensor types this reader knows by number (ggml.h). Every number below kGgmlTypeCount that
// is not retired is "known"; only those listed in gguf_tensor_type_supported() can be converted.
enum GgmlType : uint32_t {
  kGgmlF32 = 0,
  kGgmlF16 = 1,
  kGgmlQ4_0 = 2,
  kGgmlQ4_1 = 3,
  kGgmlQ8_0 = 8,
  kGgmlBF16 = 30,
};
constexpr uint32_t kGgmlTypeCount = 40;  // ggml.h GGML_TYPE_COUNT (MXFP4 = 39 is the last)
const char* ggml_type_name(uint32_t type) noexcept;  // "Q4_1", "unknown" for retired/out of range
bool gguf_tensor_type_supported(uint32_t type) noexcept;

// One metadata value. Scalars use the member their type implies (integers both in `u`/`i` as
// their two's complement views, floats in `f`, bools in `u`); arrays keep element type and
// elements (nested arrays allowed, depth bounded).
struct GgufValue {
  GgufType type = GgufType::kUint8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0.0;
  std::string str;
  GgufType array_type = GgufType::kUint8;
  std::vector<GgufValue> array;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order: ne[0] is the contiguous (innermost) dimension
  uint32_t type = 0;         // GgmlType
  uint64_t offset = 0;       // relative to the data section
  uint64_t n_elements = 0;
  uint64_t nbytes = 0;
  // The row-major (PyTorch/HF) shape: ne reversed.
  std::vector<int64_t> shape() const;
};

struct GgufLimits {
  uint64_t max_tensors = 1'000'000;
  uint64_t max_kv = 1'000'000;
  uint64_t max_string_bytes = 64ull << 20;  // one key or string value
  uint64_t max_array_elements = 100'000'000;
  int max_array_depth = 4;
};

struct GgufHeader {
  uint32_t version = 0;
  std::vector<std::pair<std::string, GgufValue>> kv;  // file order
  uint64_t alignment = 32;                            // general.alignment or the default
  uint64_t data_offset = 0;                           // absolute start of the data section
  std::vector<GgufTensorInfo> tensors;                // file order
  const GgufValue* find(const std::string& key) const noexcept;
  const GgufTensorInfo* find_tensor(const std::string& name) const noexcept;
};

// Validates a GGUF header held in data[0, size) belonging to a file of `file_size` bytes
// (size may be shorter than the file; the tensor data is not needed). Never reads past `size`.
Result<GgufHeader> parse_gguf_header(const uint8_t* data, size_t size, uint64_t file_size,
                                     const GgufLimits& limits = {});

// Dequantizes `n` elements of ggml type `type` from `src` (exactly the bytes n elements take)
// into dst. n must be a multiple of the type's block size. Block layouts (ggml-common.h):
// Q8_0 = fp16 d + 32 int8 (x = q*d); Q4_0 = fp16 d + 16 bytes, element j in the low nibble of
// byte j, element j+16 in its high nibble (x = (q-8)*d); Q4_1 = fp16 d, fp16 m, nibbles as Q4_0
// (x = q*d + m).
Status gguf_dequantize(uint32_t type, const uint8_t* src, size_t src_bytes, uint64_t n, float* dst);
// Bytes n elements of `type` take; an error for unsupported types, partial blocks or overflow.
Result<uint64_t> gguf_type_bytes(uint32_t type, uint64_t n);

// A mapped GGUF file with a validated header.
class GgufFile {
 public:
  static Result<std::unique_ptr<GgufFile>> open(const std::filesystem::path& path,
                                                const GgufLimits& limits = {});
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  const GgufHeader& header() const noexcept;
  const std::filesystem::path& path() const noexcept;
  // The tensor's raw bytes inside the mapping (valid while the GgufFile lives).
  Result<const uint8_t*> tensor_data(const std::string& name) const;
  // Dequantized to fp32, row-major in shape().
  Result<std::vector<float>> dequantize(const std::string& name) const;

 private:
  struct Impl;
  explicit GgufFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------------ GGUF -> HF (llama)

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight", "token_embd.weight" ->
// "model.embed_tokens.weight", "output.weight" -> "lm_head.weight", ... An error names a
// tensor this converter has no HF name for (e.g. rope_freqs.weight).
Result<std::string> gguf_to_hf_tensor_name(const std::string& gguf_name);

// Undoes convert_hf_to_gguf.py's permute() on the rows of a [rows, cols] matrix: within each of
// the n_head heads, GGUF row 2*i + j holds HF row j*(head_dim/2) + i. rows must be a multiple
// of 2 * n_head. `src` and `dst` must not overlap.
Status unpermute_rotary_rows(const float* src, float* dst, int64_t rows, int64_t cols,
                             int64_t n_head);
// The forward permutation (HF -> GGUF), for tests and for writing GGUF fixtures.
Status permute_rotary_rows(const float* src, float* dst, int64_t rows, int64_t cols,
                           int64_t n_head);

// config.json (LlamaForCausalLM) from the llama.* metadata and the tensor shapes. Errors name
// the missing key, or the key whose type disagrees with what the converter reads.
Result<nlohmann::json> llama_config_from_gguf(const GgufHeader& header);

struct ConvertOptions {
  DLDataType dtype{kDLBfloat, 16, 1};  // output dtype: bf16 (default), f16 or f32
  bool overwrite = false;
  uint64_t max_shard_bytes = 5'000'000'000;
};

struct ConvertSummary {
  nlohmann::json config;
  std::map<std::string, std::string> tensor_types;  // HF name -> source ggml type name
  WriteSummary written;
};

Result<ConvertSummary> convert_gguf_to_hf(const std::filesystem::path& gguf_path,
                                          const std::filesystem::path& out_dir,
                                          const ConvertOptions& options = {});

}  // namespace qforge
