// Test helper: GGUF files built byte by byte (versions 2 and 3 share the layout), valid or
// deliberately broken, plus block encoders for the quantized types. Header-only; independent of
// the reader under test (it only shares the public enums).
//
//   std::string file = GgufBuilder().str("general.architecture", "llama")
//                          .tensor("w", {32, 2}, kGgmlF32, f32_le(values)).bytes();
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "qforge/convert.hpp"

namespace qforge::test {

inline std::string gle(uint64_t v, int n) {
  std::string out(static_cast<size_t>(n), '\0');
  for (int i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}
inline std::string gu32(uint32_t v) { return gle(v, 4); }
inline std::string gu64(uint64_t v) { return gle(v, 8); }
inline std::string gstr(const std::string& s) { return gu64(s.size()) + s; }
inline std::string gf32(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return gu32(b);
}
inline std::string f32_le(const std::vector<float>& v) {
  std::string out;
  for (float f : v) out += gf32(f);
  return out;
}

class GgufBuilder {
 public:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    std::optional<uint64_t> offset;  // override the computed (aligned) offset
  };

  GgufBuilder& version(uint32_t v) {
    version_ = v;
    return *this;
  }
  GgufBuilder& n_tensors(uint64_t n) {
    n_tensors_ = n;
    return *this;
  }
  GgufBuilder& n_kv(uint64_t n) {
    n_kv_ = n;
    return *this;
  }
  // Any value, already encoded (type tag + payload written by the builder).
  GgufBuilder& raw(const std::string& key, uint32_t type, const std::string& payload) {
    kv_ += gstr(key) + gu32(type) + payload;
    ++kv_count_;
    return *this;
  }
  GgufBuilder& u32(const std::string& key, uint32_t v) {
    // Invalid alignments stay in the file only; the data keeps the default padding.
    if (key == "general.alignment" && v != 0 && (v & (v - 1)) == 0 && v <= 65536) alignment_ = v;
    return raw(key, 4, gu32(v));
  }
  GgufBuilder& f32(const std::string& key, float v) { return raw(key, 6, gf32(v)); }
  GgufBuilder& str(const std::string& key, const std::string& v) { return raw(key, 8, gstr(v)); }
  GgufBuilder& str_array(const std::string& key, const std::vector<std::string>& v) {
    std::string payload = gu32(8) + gu64(v.size());
    for (const auto& s : v) payload += gstr(s);
    return raw(key, 9, payload);
  }
  GgufBuilder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                      std::string data, std::optional<uint64_t> offset = std::nullopt) {
    tensors_.push_back({name, std::move(ne), type, std::move(data), offset});
    return *this;
  }
  // Drop the last `n` bytes of the result (truncated downloads).
  GgufBuilder& truncate(size_t n) {
    truncate_ = n;
    return *this;
  }

  std::string bytes() const {
    std::string out = "GGUF" + gu32(version_) + gu64(n_tensors_.value_or(tensors_.size())) +
                      gu64(n_kv_.value_or(kv_count_)) + kv_;
    const uint64_t align = alignment_ == 0 ? 32 : alignment_;
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const auto& t : tensors_) {
      const uint64_t off = t.offset.value_or(next);
      offsets.push_back(off);
      next = (off + t.data.size() + align - 1) / align * align;
      out += gstr(t.name) + gu32(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) out += gu64(d);
      out += gu32(t.type) + gu64(off);
    }
    while (out.size() % align != 0) out += '\0';
    std::string data;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (data.size() < offsets[i] + tensors_[i].data.size()) {
        data.resize(offsets[i] + tensors_[i].data.size(), '\0');
      }
      std::memcpy(&data[offsets[i]], tensors_[i].data.data(), tensors_[i].data.size());
    }
    out += data;
    if (truncate_ > 0) out.resize(out.size() > truncate_ ? out.size() - truncate_ : 0);
    return out;
  }

 private:
  uint32_t version_ = 3;
  std::optional<uint64_t> n_tensors_, n_kv_;
  std::string kv_;
  uint64_t kv_count_ = 0;
  uint64_t alignment_ = 0;
  std::vector<Tensor> tensors_;
  size_t truncate_ = 0;
};

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// IEEE half bits of a few exactly representable test scales (no converter code involved).
constexpr uint16_t kHalfOne = 0x3C00, kHalfTwo = 0x4000, kHalfHalf = 0x3800, kHalfQuarter = 0x3400,
                   kHalfMinusOne = 0xBC00;

// One Q8_0 block: d (half bits) + 32 int8.
inline std::string q8_0_block(uint16_t d, const std::vector<int8_t>& q) {
  std::string out = gle(d, 2);
  for (int8_t v : q) out += static_cast<char>(v);
  return out;
}
// One Q4_0 block: d + 16 bytes, element j in the low nibble of byte j, j+16 in the high one.
inline std::string q4_0_block(uint16_t d, const std::vector<uint8_t>& q32) {
  std::string out = gle(d, 2);
  for (size_t j = 0; j < 16; ++j)
    out += static_cast<char>((q32[j] & 15) | ((q32[j + 16] & 15) << 4));
  return out;
}
inline std::string q4_1_block(uint16_t d, uint16_t m, const std::vector<uint8_t>& q32) {
  std::string out = gle(d, 2) + gle(m, 2);
  for (size_t j = 0; j < 16; ++j)
    out += static_cast<char>((q32[j] & 15) | ((q32[j + 16] & 15) << 4));
  return out;
}

}  // namespace qforge::test
