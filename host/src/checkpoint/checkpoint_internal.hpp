// Private helpers shared by the checkpoint room's files (reader, folder logic, writer).
#pragma once

#include <dlpack/dlpack.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "qforge/error.hpp"

namespace qforge::checkpoint {

// Where the first invalid UTF-8 sequence starts, or npos when `text` is valid UTF-8 (no
// overlong forms, no surrogates, nothing above U+10FFFF).
size_t find_invalid_utf8(std::string_view text) noexcept;

// Strict JSON for files we read whole (config.json, the index, a safetensors header), with
// the rules of config/strict_json.hpp (duplicate keys refused, nesting capped at `max_depth`,
// errors "<source>:<line>:<col>: ...") plus: a UTF-8 byte order mark is refused (nlohmann
// would skip it silently, Python's json refuses it), and parsing is linear in the input (a SAX
// builder; nlohmann's callback parser is quadratic in the members of one object).
Result<nlohmann::json> parse_json_document(const std::string& text, const std::string& source,
                                           size_t max_depth);

// The order the reference writer (safetensors' Rust `prepare`) sorts tensors by, descending:
// its Dtype enum order (U64 > I64 > F64 > F32 > U32 > I32 > BF16 > F16 > U16 > I16 > F8_E4M3 >
// F8_E5M2 > I8 > U8 > BOOL). Larger rank = earlier in the data section. -1 when unknown.
int safetensors_dtype_rank(DLDataType dtype) noexcept;

// config.json / index size cap (RELIABILITY CF1: a 100 MB config is refused, bounded).
constexpr uint64_t kMaxJsonFileBytes = uint64_t{16} << 20;

}  // namespace qforge::checkpoint
