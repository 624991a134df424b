// Test helper: safetensors files built byte by byte, valid or deliberately broken, plus small
// file-system helpers for the checkpoint tests. Header-only.
//
//   std::string file = SafetensorsBuilder()
//                          .tensor("w", "F32", {2}, f32_bytes({1.0f, 2.0f}))
//                          .metadata("format", "pt")
//                          .bytes();                        // valid, space-padded to 8
//   std::string broken = raw_safetensors(R"({"w":{...}})", std::string(8, '\0'));
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qforge::test {

inline std::string le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out;
}

// 8-byte length of `header` + `header` + `data`, nothing checked or padded.
inline std::string raw_safetensors(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

inline std::string f32_bytes(const std::vector<float>& values) {
  std::string out(values.size() * 4, '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// `n` bytes counting up from `seed` (distinct contents per tensor).
inline std::string pattern_bytes(size_t n, unsigned seed = 1) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 31 + seed * 17) & 0xFF);
  return out;
}

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Tensors laid out back to back in the order added; header keys in the same order.
class SafetensorsBuilder {
 public:
  SafetensorsBuilder& tensor(std::string name, std::string dtype, std::vector<int64_t> shape,
                             std::string data) {
    tensors_.push_back({std::move(name), std::move(dtype), std::move(shape), std::move(data)});
    return *this;
  }
  SafetensorsBuilder& metadata(std::string key, std::string value) {
    metadata_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  // Pad the header to a multiple of `align` with spaces (0 or 1: no padding).
  SafetensorsBuilder& pad_to(size_t align) {
    align_ = align;
    return *this;
  }

  std::string header() const {
    std::string h = "{";
    bool first = true;
    if (!metadata_.empty()) {
      h += "\"__metadata__\":{";
      for (size_t i = 0; i < metadata_.size(); ++i) {
        h += (i ? "," : "") + json_string(metadata_[i].first) + ":" +
             json_string(metadata_[i].second);
      }
      h += "}";
      first = false;
    }
    uint64_t offset = 0;
    for (const Entry& t : tensors_) {
      h += (first ? "" : ",") + json_string(t.name) + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
      for (size_t d = 0; d < t.shape.size(); ++d) h += (d ? "," : "") + std::to_string(t.shape[d]);
      h += "],\"data_offsets\":[" + std::to_string(offset) + "," +
           std::to_string(offset + t.data.size()) + "]}";
      offset += t.data.size();
      first = false;
    }
    h += "}";
    if (align_ > 1) h.append((align_ - h.size() % align_) % align_, ' ');
    return h;
  }

  std::string data() const {
    std::string d;
    for (const Entry& t : tensors_) d += t.data;
    return d;
  }

  std::string bytes() const { return raw_safetensors(header(), data()); }

 private:
  struct Entry {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::string data;
  };
  std::vector<Entry> tensors_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  size_t align_ = 8;
};

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qforge-ckpt-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    // Undo chmod done by permission tests so removal works.
    for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::add, ec);
    }
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Every entry of `dir` (recursively) with its bytes: "name -> content" snapshots for
// byte-identical comparisons.
inline std::vector<std::pair<std::string, std::string>> snapshot_tree(
    const std::filesystem::path& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string rel = entry.path().lexically_relative(dir).string();
    out.emplace_back(rel, entry.is_regular_file() ? read_bytes(entry.path()) : "<dir>");
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace qforge::test
