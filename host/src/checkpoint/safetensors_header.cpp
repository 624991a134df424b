// parse_safetensors_header: the safetensors reference reader's checks, in its order, plus the
// stricter ones of RELIABILITY.md 6.1 (docs/safetensors.md lists every rule and its error).
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint_internal.hpp"
#include "qforge/checkpoint.hpp"

namespace qforge {
namespace {

using nlohmann::json;

constexpr const char* kSource = "safetensors header";
constexpr const char* kNotSafetensors = "the file is truncated or not a safetensors file";

// Dtypes newer safetensors versions define that qforge does not handle (sub-byte floats and
// E8M0 scales): "unsupported" rather than "unknown", so a user knows the file is not broken.
constexpr const char* kUnsupportedDtypes[] = {"F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "C64"};

Error header_error(const std::string& problem, std::string why, std::string fix) {
  return bad_input(std::string(kSource) + ": " + problem, std::move(why), std::move(fix));
}

Error tensor_error(const std::string& name, const std::string& problem, std::string why,
                   std::string fix = "the header is corrupt; re-export the checkpoint") {
  return header_error("tensor '" + name + "': " + problem, std::move(why), std::move(fix));
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// JSON type name for messages ("number", "object", ...).
std::string type_of(const json& value) {
  if (value.is_number_float()) return "a float";
  if (value.is_number_integer() && !value.is_number_unsigned()) return "a negative integer";
  const std::string type = value.type_name();
  return (type == "array" || type == "object" ? "an " : "a ") + type;
}

struct Parsed {
  TensorInfo info;
  uint64_t begin = 0;
  uint64_t end = 0;
};

Status parse_dtype(const std::string& name, const json& value, TensorInfo& info) {
  if (!value.is_string()) {
    return tensor_error(name, "dtype is " + type_of(value),
                        "dtype must be a string such as \"F32\"");
  }
  const std::string text = value.get<std::string>();
  for (const char* unsupported : kUnsupportedDtypes) {
    if (text == unsupported) {
      return tensor_error(name, "unsupported dtype '" + text + "'",
                          "qforge reads F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, "
                          "U64, U32, U16, U8 and BOOL",
                          "convert the tensor to one of those dtypes");
    }
  }
  auto dtype = dtype_from_string(text);
  // dtype_from_string also takes torch spellings ("float32"); a header holds only safetensors'.
  if (!dtype.ok() || dtype_to_string(dtype.value()) != text) {
    return tensor_error(name, "unknown dtype '" + text + "'",
                        "safetensors dtypes are F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, "
                        "I16, I8, U64, U32, U16, U8 and BOOL");
  }
  info.dtype = dtype.value();
  info.dtype_name = text;
  return ok_status();
}

Status parse_shape(const std::string& name, const json& value, TensorInfo& info) {
  if (!value.is_array()) {
    return tensor_error(name, "shape is " + type_of(value), "shape must be an array of integers");
  }
  info.shape.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const json& dim = value[i];
    if (dim.is_number_unsigned()) {
      const auto d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return tensor_error(name, "shape dimension " + std::to_string(i) + " is too large",
                            std::to_string(d) + " exceeds 2^63-1");
      }
      info.shape.push_back(static_cast<int64_t>(d));
    } else if (dim.is_number_integer()) {
      return tensor_error(name, "negative shape dimension " + std::to_string(i),
                          "dimension " + std::to_string(i) + " is " + dim.dump() +
                              "; dimensions are integers >= 0");
    } else {
      return tensor_error(name, "shape dimension " + std::to_string(i) + " is not an integer",
                          "it is " + type_of(dim) + " (" + dim.dump() + ")");
    }
  }
  return ok_status();
}

Status parse_offsets(const std::string& name, const json& value, Parsed& out) {
  if (!value.is_array() || value.size() != 2) {
    return tensor_error(name, "data_offsets is not a pair",
                        "it is " + type_of(value) +
                            (value.is_array() ? " of " + std::to_string(value.size()) : "") +
                            "; expected [begin, end]");
  }
  for (size_t i = 0; i < 2; ++i) {
    if (!value[i].is_number_unsigned()) {
      return tensor_error(name,
                          "data_offsets entry " + std::to_string(i) + " is not an integer >= 0",
                          "it is " + type_of(value[i]) + " (" + value[i].dump() + ")");
    }
  }
  out.begin = value[0].get<uint64_t>();
  out.end = value[1].get<uint64_t>();
  if (out.end < out.begin) {
    return tensor_error(name,
                        "invalid data_offsets: end " + std::to_string(out.end) +
                            " is before begin " + std::to_string(out.begin),
                        "offsets are [begin, end) with begin <= end");
  }
  return ok_status();
}

Result<Parsed> parse_tensor(const std::string& name, const json& entry, uint64_t data_len) {
  if (!entry.is_object()) {
    return tensor_error(name, "entry is " + type_of(entry),
                        "each tensor is an object with dtype, shape and data_offsets");
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) {
      return tensor_error(name, std::string("missing field '") + key + "'",
                          "each tensor has dtype, shape and data_offsets");
    }
  }
  for (const auto& item : entry.items()) {
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets") {
      return tensor_error(name, "unknown field '" + item.key() + "'",
                          "a tensor has only dtype, shape and data_offsets (stricter than the "
                          "reference reader, which ignores extra fields)");
    }
  }
  Parsed p;
  p.info.name = name;
  QF_RETURN_IF_ERROR(parse_dtype(name, entry["dtype"], p.info));
  QF_RETURN_IF_ERROR(parse_shape(name, entry["shape"], p.info));
  QF_RETURN_IF_ERROR(parse_offsets(name, entry["data_offsets"], p));

  auto numel = checked_numel(p.info.shape);
  if (!numel.ok()) {
    return tensor_error(name, "element count of shape " + shape_text(p.info.shape) + " overflows",
                        "the product of the dimensions exceeds 2^63-1");
  }
  const auto n = static_cast<uint64_t>(numel.value());
  const uint64_t elem = dtype_size(p.info.dtype);
  if (n > std::numeric_limits<uint64_t>::max() / elem) {
    return tensor_error(
        name, "byte size of shape " + shape_text(p.info.shape) + " overflows",
        std::to_string(n) + " elements of " + std::to_string(elem) + " bytes exceed 2^64-1");
  }
  p.info.nbytes = n * elem;
  if (p.end - p.begin != p.info.nbytes) {
    return tensor_error(
        name,
        "invalid tensor info: data_offsets span " + std::to_string(p.end - p.begin) + " bytes",
        "dtype " + p.info.dtype_name + " and shape " + shape_text(p.info.shape) + " need " +
            std::to_string(p.info.nbytes) + " bytes");
  }
  if (p.end > data_len) {
    return tensor_error(
        name,
        "data_offsets end " + std::to_string(p.end) + " is beyond the end of the data section",
        "the data section has " + std::to_string(data_len) + " bytes", kNotSafetensors);
  }
  return p;
}

Status parse_metadata(const json& value, std::map<std::string, std::string>& out) {
  if (!value.is_object()) {
    return header_error("__metadata__ is " + type_of(value), "__metadata__ maps strings to strings",
                        "re-export the checkpoint");
  }
  for (const auto& item : value.items()) {
    if (!item.value().is_string()) {
      return header_error("__metadata__ value of '" + item.key() + "' is " + type_of(item.value()),
                          "__metadata__ maps strings to strings", "re-export the checkpoint");
    }
    out.emplace(item.key(), item.value().get<std::string>());
  }
  return ok_status();
}

// Offsets must tile [0, data_len) exactly, in offset order (docs/safetensors.md "Layout").
Status check_tiling(const std::vector<Parsed>& sorted, uint64_t data_len) {
  uint64_t expected = 0;
  const std::string* previous = nullptr;
  for (const Parsed& p : sorted) {
    const std::string& name = p.info.name;
    if (p.begin > expected) {
      if (previous == nullptr) {
        return tensor_error(
            name, "the first tensor starts at offset " + std::to_string(p.begin) + ", not 0",
            "the data section must begin with a tensor (no leading gap)");
      }
      return tensor_error(
          name, "gap of " + std::to_string(p.begin - expected) + " bytes before this tensor",
          "it starts at " + std::to_string(p.begin) + " but tensor '" + *previous + "' ends at " +
              std::to_string(expected));
    }
    if (p.begin < expected) {
      return tensor_error(name, "overlaps tensor '" + *previous + "'",
                          "it starts at " + std::to_string(p.begin) + " but '" + *previous +
                              "' ends at " + std::to_string(expected));
    }
    expected = p.end;
    if (p.info.nbytes != 0) previous = &name;
  }
  // A zero-size tensor's offset must be one where no tensor with data starts: with exact tiling
  // that is only the end of the data section (docs/safetensors.md "Zero-size tensors").
  for (size_t i = 0; i < sorted.size(); ++i) {
    const Parsed& p = sorted[i];
    if (p.info.nbytes != 0 || p.begin == data_len) continue;
    std::string other = "another tensor";
    for (size_t k = i + 1; k < sorted.size(); ++k) {
      if (sorted[k].info.nbytes != 0) {
        other = "'" + sorted[k].info.name + "'";
        break;
      }
    }
    return tensor_error(
        p.info.name,
        "zero-size tensor at offset " + std::to_string(p.begin) + " shares it with tensor " + other,
        "qforge accepts zero-size tensors only at the end of the data section, "
        "where no tensor with data starts");
  }
  if (expected < data_len) {
    return header_error(
        std::to_string(data_len - expected) + " trailing bytes after the last tensor",
        "the tensors end at " + std::to_string(expected) + " but the data section has " +
            std::to_string(data_len) + " bytes; extra data (an appended archive?) is refused",
        "strip the trailing bytes or re-export the checkpoint");
  }
  return ok_status();
}

}  // namespace

Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* data, size_t size,
                                                   uint64_t file_size,
                                                   const SafetensorsLimits& limits) {
  if (file_size < 8 || size < 8) {
    return header_error("header too small: the file has " +
                            std::to_string(std::min<uint64_t>(file_size, size)) + " bytes",
                        "a safetensors file starts with an 8-byte little-endian header length",
                        kNotSafetensors);
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > limits.max_header_bytes) {
    return header_error("header too large: " + std::to_string(n) + " bytes",
                        "the limit is " + std::to_string(limits.max_header_bytes) +
                            " bytes (the reference reader's cap)",
                        kNotSafetensors);
  }
  if (n > file_size - 8) {
    return header_error("invalid header length " + std::to_string(n),
                        "only " + std::to_string(file_size - 8) + " bytes follow the length field",
                        kNotSafetensors);
  }
  if (n > size - 8) {
    return header_error("header not fully read",
                        "the header needs " + std::to_string(n + 8) + " bytes but only " +
                            std::to_string(size) + " were given",
                        "pass the whole header prefix");
  }
  if (n < 2) {
    return header_error("header length " + std::to_string(n) + " cannot hold a JSON object",
                        "the header is a JSON object, at least \"{}\"", kNotSafetensors);
  }
  const std::string text(reinterpret_cast<const char*>(data + 8), static_cast<size_t>(n));
  if (const size_t bad = checkpoint::find_invalid_utf8(text); bad != std::string::npos) {
    return header_error("header is not valid UTF-8",
                        "invalid byte sequence at header byte " + std::to_string(bad),
                        kNotSafetensors);
  }
  if (text.back() == '\0') {
    return header_error("header is padded with NUL bytes",
                        "the format pads the header with spaces (0x20); NUL is not JSON",
                        "re-export the checkpoint with a current safetensors writer");
  }
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) {
    return header_error("header starts with a UTF-8 byte order mark",
                        "the header is JSON text, which must not begin with a BOM",
                        kNotSafetensors);
  }
  if (text.front() != '{') {
    return header_error("header does not start with '{'",
                        "the header must be a JSON object; it starts with byte " +
                            std::to_string(static_cast<unsigned char>(text.front())),
                        kNotSafetensors);
  }
  auto parsed = checkpoint::parse_json_document(text, kSource, limits.max_json_depth);
  if (!parsed.ok()) return parsed.error();
  const json& root = parsed.value();
  if (!root.is_object()) {  // unreachable after the '{' check, kept for the invariant
    return header_error("header is not a JSON object", "it is " + type_of(root), kNotSafetensors);
  }

  SafetensorsHeader header;
  header.header_bytes = n;
  const bool has_metadata = root.contains("__metadata__");
  const uint64_t tensor_count = root.size() - (has_metadata ? 1 : 0);
  if (tensor_count > limits.max_tensors) {
    return header_error("too many tensors: " + std::to_string(tensor_count),
                        "the limit is " + std::to_string(limits.max_tensors) + " per file",
                        "split the checkpoint into more shards");
  }
  const uint64_t data_len = file_size - 8 - n;
  std::vector<Parsed> tensors;
  tensors.reserve(static_cast<size_t>(tensor_count));
  for (const auto& item : root.items()) {
    if (item.key() == "__metadata__") {
      QF_RETURN_IF_ERROR(parse_metadata(item.value(), header.metadata));
      continue;
    }
    auto tensor = parse_tensor(item.key(), item.value(), data_len);
    if (!tensor.ok()) return tensor.error();
    tensors.push_back(std::move(tensor).value());
  }
  std::sort(tensors.begin(), tensors.end(), [](const Parsed& a, const Parsed& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.info.name < b.info.name;
  });
  QF_RETURN_IF_ERROR(check_tiling(tensors, data_len));

  header.tensors.reserve(tensors.size());
  for (Parsed& p : tensors) {
    p.info.file_offset = 8 + n + p.begin;
    header.tensors.push_back(std::move(p.info));
  }
  return header;
}

}  // namespace qforge
