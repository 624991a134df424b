// GGUF header validation (RELIABILITY.md 6.2). Layout (gguf.md, versions 2 and 3; 3 only added
// big-endian files, which carry the same layout and are rejected here by their version bytes):
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv x (string key, u32 type, value)
//   | n_tensors x (string name, u32 n_dims, n_dims x u64 ne, u32 ggml type, u64 offset)
//   | padding to general.alignment | data
// Strings are u64 length + bytes (no terminator). Every count read from the file is checked
// against the bytes that remain before anything is reserved, so a hostile count costs nothing.
#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <string>

#include "convert/printable.hpp"
#include "qforge/convert.hpp"

namespace qforge {
namespace {

constexpr uint64_t kMaxAlignment = 65536;
constexpr uint32_t kMaxDims = 4;

std::string u64s(uint64_t v) { return std::to_string(v); }

class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t pos() const noexcept { return pos_; }
  uint64_t remaining() const noexcept { return size_ - pos_; }

  Status need(uint64_t n, const std::string& what) const {
    if (n > remaining()) {
      return bad_input("GGUF header truncated",
                       what + " needs " + u64s(n) + " bytes at offset " + u64s(pos_) +
                           ", but only " + u64s(remaining()) + " remain",
                       "the file is incomplete or not a GGUF file; download it again");
    }
    return ok_status();
  }
  template <class T>
  Result<T> read(const std::string& what) {
    QF_RETURN_IF_ERROR(need(sizeof(T), what));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  Result<std::string> string(const std::string& what, uint64_t max_bytes) {
    auto len = read<uint64_t>(what + " length");
    if (!len.ok()) return len.error();
    if (len.value() > remaining()) {
      return bad_input("GGUF string length beyond the file",
                       what + " declares " + u64s(len.value()) + " bytes at offset " + u64s(pos_) +
                           ", but only " + u64s(remaining()) + " remain",
                       "the file is corrupt or truncated");
    }
    if (len.value() > max_bytes) {
      return bad_input(
          "GGUF string too long",
          what + " declares " + u64s(len.value()) + " bytes; the limit is " + u64s(max_bytes),
          "the file is corrupt");
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len.value()));
    pos_ += len.value();
    return s;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Smallest encoding of one value of `type`; used to bound array counts before reserving.
uint64_t min_value_bytes(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kString:
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kArray:
      return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

Status read_value(Cursor& c, GgufType type, const std::string& key, const GgufLimits& limits,
                  int depth, GgufValue& out);

template <class T>
Status read_int(Cursor& c, const std::string& key, GgufValue& out) {
  auto v = c.read<T>("value of '" + key + "'");
  if (!v.ok()) return v.error();
  out.i = static_cast<int64_t>(v.value());
  out.u = static_cast<uint64_t>(out.i);
  if (!std::numeric_limits<T>::is_signed) out.u = static_cast<uint64_t>(v.value());
  out.f = static_cast<double>(v.value());
  return ok_status();
}

Status read_array(Cursor& c, const std::string& key, const GgufLimits& limits, int depth,
                  GgufValue& out) {
  if (depth >= limits.max_array_depth) {
    return bad_input(
        "GGUF arrays nested too deeply",
        "'" + key + "' nests arrays deeper than " + std::to_string(limits.max_array_depth),
        "the file is corrupt");
  }
  auto et = c.read<uint32_t>("array type of '" + key + "'");
  if (!et.ok()) return et.error();
  if (!known_value_type(et.value())) {
    return bad_input(
        "GGUF unknown value type",
        "array '" + key + "' has element type " + u64s(et.value()) + "; known types are 0..12",
        "the file is corrupt or from a newer GGUF version");
  }
  auto n = c.read<uint64_t>("array length of '" + key + "'");
  if (!n.ok()) return n.error();
  out.array_type = static_cast<GgufType>(et.value());
  const uint64_t min_bytes = min_value_bytes(out.array_type);
  if (n.value() > c.remaining() / min_bytes) {
    return bad_input("GGUF array length beyond the file",
                     "array '" + key + "' declares " + u64s(n.value()) +
                         " elements, more than the " + u64s(c.remaining()) +
                         " remaining bytes can hold",
                     "the file is corrupt or truncated");
  }
  if (n.value() > limits.max_array_elements) {
    return bad_input("GGUF array too long",
                     "array '" + key + "' declares " + u64s(n.value()) +
                         " elements; the limit is " + u64s(limits.max_array_elements),
                     "the file is corrupt");
  }
  out.array.resize(static_cast<size_t>(n.value()));
  for (auto& element : out.array) {
    QF_RETURN_IF_ERROR(read_value(c, out.array_type, key, limits, depth + 1, element));
  }
  return ok_status();
}

Status read_value(Cursor& c, GgufType type, const std::string& key, const GgufLimits& limits,
                  int depth, GgufValue& out) {
  out.type = type;
  switch (type) {
    case GgufType::kUint8:
      return read_int<uint8_t>(c, key, out);
    case GgufType::kInt8:
      return read_int<int8_t>(c, key, out);
    case GgufType::kUint16:
      return read_int<uint16_t>(c, key, out);
    case GgufType::kInt16:
      return read_int<int16_t>(c, key, out);
    case GgufType::kUint32:
      return read_int<uint32_t>(c, key, out);
    case GgufType::kInt32:
      return read_int<int32_t>(c, key, out);
    case GgufType::kUint64:
      return read_int<uint64_t>(c, key, out);
    case GgufType::kInt64:
      return read_int<int64_t>(c, key, out);
    case GgufType::kBool: {
      auto v = c.read<uint8_t>("value of '" + key + "'");
      if (!v.ok()) return v.error();
      if (v.value() > 1) {
        return bad_input("GGUF bool out of range",
                         "'" + key + "' holds " + u64s(v.value()) + "; a bool is 0 or 1",
                         "the file is corrupt");
      }
      out.u = v.value();
      out.i = v.value();
      return ok_status();
    }
    case GgufType::kFloat32: {
      auto v = c.read<float>("value of '" + key + "'");
      if (!v.ok()) return v.error();
      out.f = v.value();
      return ok_status();
    }
    case GgufType::kFloat64: {
      auto v = c.read<double>("value of '" + key + "'");
      if (!v.ok()) return v.error();
      out.f = v.value();
      return ok_status();
    }
    case GgufType::kString: {
      auto s = c.string("string value of '" + key + "'", limits.max_string_bytes);
      if (!s.ok()) return s.error();
      out.str = std::move(s.value());
      return ok_status();
    }
    case GgufType::kArray:
      return read_array(c, key, limits, depth, out);
  }
  return ok_status();
}

Status check_alignment(const GgufValue& v, uint64_t& alignment) {
  if (v.type != GgufType::kUint32) {
    return bad_input(
        "GGUF general.alignment has the wrong type",
        std::string("general.alignment is ") + gguf_type_name(v.type) + "; GGUF requires UINT32",
        "the file is corrupt");
  }
  if (v.u == 0 || (v.u & (v.u - 1)) != 0 || v.u > kMaxAlignment) {
    return bad_input("GGUF general.alignment invalid",
                     "general.alignment is " + u64s(v.u) +
                         "; it must be a power of two between 1 and " + u64s(kMaxAlignment),
                     "the file is corrupt");
  }
  alignment = v.u;
  return ok_status();
}

Status read_tensor_info(Cursor& c, const GgufLimits& limits, uint64_t index, GgufTensorInfo& t) {
  auto name = c.string("name of tensor " + u64s(index), limits.max_string_bytes);
  if (!name.ok()) return name.error();
  t.name = std::move(name.value());
  const std::string shown = printable(t.name);
  if (t.name.empty()) {
    return bad_input("GGUF empty tensor name", "tensor " + u64s(index) + " has an empty name",
                     "the file is corrupt");
  }
  auto n_dims = c.read<uint32_t>("n_dims of '" + shown + "'");
  if (!n_dims.ok()) return n_dims.error();
  if (n_dims.value() > kMaxDims) {
    return bad_input("GGUF tensor has too many dimensions",
                     "'" + shown + "' has n_dims " + u64s(n_dims.value()) +
                         "; ggml allows at most " + u64s(kMaxDims),
                     "the file is corrupt");
  }
  t.n_elements = 1;
  bool overflow = false;
  for (uint32_t d = 0; d < n_dims.value(); ++d) {
    auto ne = c.read<uint64_t>("dimension " + u64s(d) + " of '" + shown + "'");
    if (!ne.ok()) return ne.error();
    if (ne.value() == 0) {
      return bad_input("GGUF tensor has a zero dimension",
                       "'" + shown + "' dimension " + u64s(d) + " is 0",
                       "the file is corrupt; an empty tensor cannot be converted");
    }
    if (ne.value() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        t.n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne.value()) {
      overflow = true;
    } else {
      t.n_elements *= ne.value();
    }
    t.ne.push_back(ne.value());
  }
  if (overflow) {
    return bad_input("GGUF tensor element count overflows",
                     "the dimensions of '" + shown + "' multiply past 2^63", "the file is corrupt");
  }
  auto type = c.read<uint32_t>("type of '" + shown + "'");
  if (!type.ok()) return type.error();
  t.type = type.value();
  if (t.type >= kGgmlTypeCount || std::string(ggml_type_name(t.type)) == "unknown") {
    return bad_input("GGUF unknown tensor type",
                     "'" + shown + "' has ggml type " + u64s(t.type) + " (as signed " +
                         std::to_string(static_cast<int32_t>(t.type)) + "); known types are 0.." +
                         u64s(kGgmlTypeCount - 1),
                     "the file is corrupt or from a newer ggml");
  }
  auto offset = c.read<uint64_t>("offset of '" + shown + "'");
  if (!offset.ok()) return offset.error();
  t.offset = offset.value();
  if (gguf_tensor_type_supported(t.type)) {
    if (!t.ne.empty() && t.type != kGgmlF32 && t.type != kGgmlF16 && t.type != kGgmlBF16 &&
        t.ne[0] % 32 != 0) {
      return bad_input("GGUF tensor row not a whole number of blocks",
                       "'" + shown + "' (" + ggml_type_name(t.type) + ") has rows of " +
                           u64s(t.ne[0]) + " elements; the block size is 32",
                       "the file is corrupt");
    }
    auto bytes = gguf_type_bytes(t.type, t.n_elements);
    if (!bytes.ok()) {
      return bad_input("GGUF tensor byte size overflows", "'" + shown + "': " + bytes.error().why(),
                       "the file is corrupt");
    }
    t.nbytes = bytes.value();
  }
  return ok_status();
}

}  // namespace

std::vector<int64_t> GgufTensorInfo::shape() const {
  std::vector<int64_t> s;
  for (auto it = ne.rbegin(); it != ne.rend(); ++it) s.push_back(static_cast<int64_t>(*it));
  return s;
}

const GgufValue* GgufHeader::find(const std::string& key) const noexcept {
  for (const auto& [k, v] : kv) {
    if (k == key) return &v;
  }
  return nullptr;
}

const GgufTensorInfo* GgufHeader::find_tensor(const std::string& name) const noexcept {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Result<GgufHeader> parse_gguf_header(const uint8_t* data, size_t size, uint64_t file_size,
                                     const GgufLimits& limits) {
  if (size > file_size) size = static_cast<size_t>(file_size);
  Cursor c(data, size);
  GgufHeader h;
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) {
    return bad_input("not a GGUF file (bad magic)", "the first 4 bytes are not \"GGUF\"",
                     "pass a .gguf file written by llama.cpp / gguf-py");
  }
  (void)c.read<uint32_t>("magic").value();
  auto version = c.read<uint32_t>("version");
  if (!version.ok()) return version.error();
  h.version = version.value();
  if (h.version == 0 || h.version == 1) {
    return bad_input("unsupported GGUF version",
                     "version " + u64s(h.version) +
                         " (GGUF v1 used 32-bit counts and is obsolete); supported: 2 and 3",
                     "re-export the model with a current llama.cpp (convert_hf_to_gguf.py)");
  }
  if (h.version > 3) {
    return bad_input("unsupported GGUF version",
                     "version " + u64s(h.version) +
                         " is newer than this reader (supported: 2 and 3); a big-endian file "
                         "also reads as a huge version",
                     "use a little-endian GGUF v2/v3 file, or update qforge");
  }
  auto n_tensors = c.read<uint64_t>("n_tensors");
  if (!n_tensors.ok()) return n_tensors.error();
  auto n_kv = c.read<uint64_t>("n_kv");
  if (!n_kv.ok()) return n_kv.error();
  // Each tensor info takes at least 8 (name length) + 4 + 4 + 8 bytes; each KV 8 + 4 + 1.
  if (n_tensors.value() > limits.max_tensors || n_tensors.value() > c.remaining() / 24) {
    return bad_input("GGUF tensor count implausible",
                     "n_tensors is " + u64s(n_tensors.value()) + "; the limit is " +
                         u64s(limits.max_tensors) + " and the " + u64s(c.remaining()) +
                         " remaining header bytes hold at most " + u64s(c.remaining() / 24),
                     "the file is corrupt or truncated");
  }
  if (n_kv.value() > limits.max_kv || n_kv.value() > c.remaining() / 13) {
    return bad_input("GGUF key-value count implausible",
                     "n_kv is " + u64s(n_kv.value()) + "; the limit is " + u64s(limits.max_kv) +
                         " and the " + u64s(c.remaining()) +
                         " remaining header bytes hold at most " + u64s(c.remaining() / 13),
                     "the file is corrupt or truncated");
  }

  std::set<std::string> keys;
  for (uint64_t i = 0; i < n_kv.value(); ++i) {
    auto key = c.string("key " + u64s(i), limits.max_string_bytes);
    if (!key.ok()) return key.error();
    if (key.value().empty()) {
      return bad_input("GGUF empty key", "metadata key " + u64s(i) + " is empty",
                       "the file is corrupt");
    }
    const std::string shown = printable(key.value());
    if (!keys.insert(key.value()).second) {
      return bad_input("GGUF duplicate key", "metadata key '" + shown + "' appears twice",
                       "the file is corrupt");
    }
    auto type = c.read<uint32_t>("type of '" + shown + "'");
    if (!type.ok()) return type.error();
    if (!known_value_type(type.value())) {
      return bad_input(
          "GGUF unknown value type",
          "'" + shown + "' has value type " + u64s(type.value()) + "; known types are 0..12",
          "the file is corrupt or from a newer GGUF version");
    }
    GgufValue value;
    QF_RETURN_IF_ERROR(read_value(c, static_cast<GgufType>(type.value()), shown, limits, 0, value));
    if (key.value() == "general.alignment") QF_RETURN_IF_ERROR(check_alignment(value, h.alignment));
    h.kv.emplace_back(std::move(key.value()), std::move(value));
  }

  std::set<std::string> names;
  h.tensors.resize(static_cast<size_t>(n_tensors.value()));
  for (uint64_t i = 0; i < n_tensors.value(); ++i) {
    auto& t = h.tensors[static_cast<size_t>(i)];
    QF_RETURN_IF_ERROR(read_tensor_info(c, limits, i, t));
    if (!names.insert(t.name).second) {
      return bad_input("GGUF duplicate tensor name",
                       "tensor '" + printable(t.name) + "' appears twice", "the file is corrupt");
    }
  }
  const uint64_t end = c.pos();
  h.data_offset = (end + h.alignment - 1) / h.alignment * h.alignment;
  if (h.data_offset > file_size) {
    return bad_input("GGUF data section beyond the file",
                     "the data section would start at byte " + u64s(h.data_offset) + " of a " +
                         u64s(file_size) + "-byte file",
                     "the file is truncated; download it again");
  }
  const uint64_t data_bytes = file_size - h.data_offset;

  // Offsets: aligned, inside the data section, no two tensors sharing a byte.
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : h.tensors) {
    if (t.offset % h.alignment != 0) {
      return bad_input("GGUF tensor offset unaligned",
                       "'" + printable(t.name) + "' starts at data offset " + u64s(t.offset) +
                           ", not a multiple of the alignment " + u64s(h.alignment),
                       "the file is corrupt");
    }
    if (!gguf_tensor_type_supported(t.type)) continue;  // size unknown; rejected on use
    if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset) {
      return bad_input("GGUF tensor data shorter than declared",
                       "'" + printable(t.name) + "' needs bytes [" + u64s(t.offset) + ", " +
                           u64s(t.offset + std::min<uint64_t>(t.nbytes, ~uint64_t{0} - t.offset)) +
                           ") of a data section of " + u64s(data_bytes) + " bytes",
                       "the file is truncated; download it again");
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    if (prev->offset + prev->nbytes > by_offset[i]->offset) {
      return bad_input("GGUF tensor offsets overlap",
                       "'" + printable(prev->name) + "' occupies [" + u64s(prev->offset) + ", " +
                           u64s(prev->offset + prev->nbytes) + ") but '" +
                           printable(by_offset[i]->name) + "' starts at " +
                           u64s(by_offset[i]->offset),
                       "the file is corrupt");
    }
  }
  return h;
}

}  // namespace qforge
