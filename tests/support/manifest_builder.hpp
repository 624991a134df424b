// Test helper: writes plugin manifests (docs/manifest.md) field by field, so a test states only
// what it changes from a valid manifest. Header-only; any test may include it.
//
//   auto path = qforge::test::ManifestBuilder()
//                   .id("acme")
//                   .library("libacme.so")
//                   .method(qforge::test::MethodBuilder("acme_int4")
//                               .priority(10)
//                               .devices({qforge::test::DeviceBuilder::cuda("7.5")}))
//                   .without("license")           // drop a field (dotted path, [i] for lists)
//                   .set("abi.major", "high")     // any field as raw YAML text
//                   .raw_extra("x_acme_note: 1")  // verbatim YAML appended at the end
//                   .write(dir);                  // -> dir/acme.yaml
//
// Typed setters quote strings, so the result is valid unless a test asks otherwise through
// set()/raw_extra()/without(). Paths: "abi.major", "methods[0].devices[1].type".
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qforge::test {

// `text` as a YAML double-quoted scalar (always a string, whatever it looks like).
inline std::string yaml_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A flow list of quoted strings: ["a", "b"].
inline std::string yaml_string_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += yaml_quote(items[i]);
  }
  return out + "]";
}

// An ordered YAML mapping whose values are raw YAML text, nested mappings or lists of mappings.
// Emitted in block style; keys are written verbatim.
class YamlMap {
 public:
  // Sets `path` to raw YAML ("1", "\"7.5\"", "[a, b]", "{x: 1}"), replacing any value in place
  // or adding the key at the end. Parents along the path must exist.
  YamlMap& set(const std::string& path, std::string raw_yaml) {
    Entry entry;
    entry.kind = Kind::kRaw;
    entry.raw = std::move(raw_yaml);
    return put(path, std::move(entry));
  }
  YamlMap& set_map(const std::string& path, YamlMap map) {
    Entry entry;
    entry.kind = Kind::kMap;
    entry.children.push_back(std::move(map));
    return put(path, std::move(entry));
  }
  YamlMap& set_list(const std::string& path, std::vector<YamlMap> items) {
    Entry entry;
    entry.kind = Kind::kList;
    entry.children = std::move(items);
    return put(path, std::move(entry));
  }
  // Appends to the list at `path` (created empty at the end if missing).
  YamlMap& append(const std::string& path, YamlMap item) {
    auto [parent, key] = parent_of(path);
    Entry* entry = parent->find(key);
    if (entry == nullptr) {
      parent->set_list(key, {});
      entry = parent->find(key);
    }
    if (entry->kind != Kind::kList) fail("'" + path + "' is not a list");
    entry->children.push_back(std::move(item));
    return *this;
  }
  // Removes the key at `path`, or the list element when the path ends in [i].
  YamlMap& remove(const std::string& path) {
    const auto [parent, last] = parent_of(path);
    const Segment seg = parse_segment(last);
    if (seg.index >= 0) {
      Entry* entry = parent->find(seg.key);
      if (entry == nullptr || entry->kind != Kind::kList ||
          static_cast<std::size_t>(seg.index) >= entry->children.size()) {
        fail("no list element '" + path + "'");
      }
      entry->children.erase(entry->children.begin() + seg.index);
      return *this;
    }
    for (auto it = parent->entries_.begin(); it != parent->entries_.end(); ++it) {
      if (it->key == seg.key) {
        parent->entries_.erase(it);
        return *this;
      }
    }
    fail("no field '" + path + "' to remove");
  }
  // Verbatim YAML lines appended after the fields, indented to this mapping's level.
  YamlMap& raw_extra(std::string yaml) {
    extras_.push_back(std::move(yaml));
    return *this;
  }
  bool has(const std::string& path) const {
    try {
      YamlMap copy = *this;  // parent_of is non-const; a test map is small
      const auto [parent, key] = copy.parent_of(path);
      const Segment seg = parse_segment(key);
      const Entry* entry = parent->find(seg.key);
      if (entry == nullptr) return false;
      return seg.index < 0 || (entry->kind == Kind::kList &&
                               static_cast<std::size_t>(seg.index) < entry->children.size());
    } catch (const std::logic_error&) {
      return false;
    }
  }
  bool empty() const { return entries_.empty() && extras_.empty(); }

  // Block-style YAML at `indent` spaces.
  std::string emit(int indent = 0) const {
    const std::string pad(static_cast<std::size_t>(indent), ' ');
    std::string out;
    for (const Entry& e : entries_) {
      out += pad + e.key + ":";
      switch (e.kind) {
        case Kind::kRaw:
          out += " " + e.raw + "\n";
          break;
        case Kind::kMap:
          out += e.children[0].empty() ? " {}\n" : "\n" + e.children[0].emit(indent + 2);
          break;
        case Kind::kList:
          if (e.children.empty()) {
            out += " []\n";
            break;
          }
          out += "\n";
          for (const YamlMap& item : e.children) out += item.emit_list_item(indent + 2);
          break;
      }
    }
    for (const std::string& extra : extras_) {
      std::size_t start = 0;
      while (start <= extra.size()) {
        const std::size_t end = extra.find('\n', start);
        const std::string line =
            extra.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (!line.empty()) out += pad + line + "\n";
        if (end == std::string::npos) break;
        start = end + 1;
      }
    }
    return out;
  }

 private:
  enum class Kind { kRaw, kMap, kList };
  struct Entry {
    std::string key;
    Kind kind = Kind::kRaw;
    std::string raw;
    std::vector<YamlMap> children;  // kMap: exactly one; kList: the items
  };
  struct Segment {
    std::string key;
    long index = -1;  // "key[3]" -> 3
  };

  [[noreturn]] static void fail(const std::string& msg) {
    throw std::logic_error("ManifestBuilder: " + msg);
  }

  static Segment parse_segment(const std::string& text) {
    Segment seg;
    const std::size_t open = text.find('[');
    if (open == std::string::npos) {
      seg.key = text;
      return seg;
    }
    if (text.back() != ']') fail("bad path segment '" + text + "'");
    seg.key = text.substr(0, open);
    seg.index = std::stol(text.substr(open + 1, text.size() - open - 2));
    return seg;
  }

  Entry* find(const std::string& key) {
    for (Entry& e : entries_) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }

  // The mapping holding the last segment of `path`, and that segment.
  std::pair<YamlMap*, std::string> parent_of(const std::string& path) {
    YamlMap* map = this;
    std::size_t start = 0;
    for (;;) {
      const std::size_t dot = path.find('.', start);
      if (dot == std::string::npos) return {map, path.substr(start)};
      const Segment seg = parse_segment(path.substr(start, dot - start));
      Entry* entry = map->find(seg.key);
      if (entry == nullptr) fail("no field '" + path.substr(0, dot) + "'");
      if (seg.index >= 0) {
        if (entry->kind != Kind::kList ||
            static_cast<std::size_t>(seg.index) >= entry->children.size()) {
          fail("no list element '" + path.substr(0, dot) + "'");
        }
        map = &entry->children[static_cast<std::size_t>(seg.index)];
      } else {
        if (entry->kind != Kind::kMap) fail("'" + path.substr(0, dot) + "' is not a mapping");
        map = &entry->children[0];
      }
      start = dot + 1;
    }
  }

  YamlMap& put(const std::string& path, Entry entry) {
    auto [parent, key] = parent_of(path);
    entry.key = key;
    if (Entry* existing = parent->find(key)) {
      *existing = std::move(entry);
    } else {
      parent->entries_.push_back(std::move(entry));
    }
    return *this;
  }

  std::string emit_list_item(int indent) const {
    const std::string pad(static_cast<std::size_t>(indent), ' ');
    if (empty()) return pad + "- {}\n";
    std::string body = emit(indent + 2);  // first line starts with indent+2 spaces
    return pad + "- " + body.substr(static_cast<std::size_t>(indent) + 2);
  }

  std::vector<Entry> entries_;
  std::vector<std::string> extras_;
};

// Shared by the three builders: raw access to their mapping.
template <class Derived>
class YamlMapBuilder {
 public:
  // Any field as raw YAML text (a wrong type, a quoted number, a flow mapping...).
  Derived& set(const std::string& path, std::string raw_yaml) {
    map_.set(path, std::move(raw_yaml));
    return self();
  }
  // Drops a field ("license", "abi.major", "methods[0].devices[0].type", "methods[1]").
  Derived& without(const std::string& path) {
    map_.remove(path);
    return self();
  }
  // Verbatim YAML appended after this mapping's fields (duplicate keys, vendor keys, junk).
  Derived& raw_extra(std::string yaml) {
    map_.raw_extra(std::move(yaml));
    return self();
  }
  const YamlMap& map() const { return map_; }

 protected:
  Derived& self() { return static_cast<Derived&>(*this); }
  YamlMap map_;
};

// One entry of a method's `devices` list.
class DeviceBuilder : public YamlMapBuilder<DeviceBuilder> {
 public:
  explicit DeviceBuilder(const std::string& type) { map_.set("type", type); }
  static DeviceBuilder cpu(const std::vector<std::string>& features = {}) {
    DeviceBuilder d("cpu");
    if (!features.empty()) d.cpu_features(features);
    return d;
  }
  // `min_cc` like "7.5"; empty = no requirement.
  static DeviceBuilder cuda(const std::string& min_cc = "") {
    DeviceBuilder d("cuda");
    if (!min_cc.empty()) d.min_compute_capability(min_cc);
    return d;
  }
  static DeviceBuilder rocm(const std::vector<std::string>& archs = {}) {
    DeviceBuilder d("rocm");
    if (!archs.empty()) d.gcn_archs(archs);
    return d;
  }
  DeviceBuilder& type(const std::string& t) { return set("type", t); }
  DeviceBuilder& cpu_features(const std::vector<std::string>& f) {
    return set("cpu_features", yaml_string_list(f));
  }
  DeviceBuilder& min_compute_capability(const std::string& cc) {
    return set("min_compute_capability", yaml_quote(cc));
  }
  DeviceBuilder& gcn_archs(const std::vector<std::string>& a) {
    return set("gcn_archs", yaml_string_list(a));
  }
};

// One entry of `methods`. Starts valid: the given quant_method on cpu.
class MethodBuilder : public YamlMapBuilder<MethodBuilder> {
 public:
  explicit MethodBuilder(const std::string& quant_method = "acme_int4") {
    map_.set("quant_method", yaml_quote(quant_method));
    devices({DeviceBuilder::cpu()});
  }
  MethodBuilder& quant_method(const std::string& m) { return set("quant_method", yaml_quote(m)); }
  MethodBuilder& aliases(const std::vector<std::string>& a) {
    return set("aliases", yaml_string_list(a));
  }
  // `config_yaml` is the preset's config as flow YAML: "{bits: 4, sym: true}".
  MethodBuilder& preset(const std::string& name, const std::string& config_yaml) {
    if (!map_.has("presets")) map_.set_map("presets", YamlMap());
    return set("presets." + name, config_yaml);
  }
  MethodBuilder& devices(const std::vector<DeviceBuilder>& d) {
    std::vector<YamlMap> items;
    for (const DeviceBuilder& device : d) items.push_back(device.map());
    map_.set_list("devices", std::move(items));
    return *this;
  }
  MethodBuilder& add_device(const DeviceBuilder& d) {
    map_.append("devices", d.map());
    return *this;
  }
  MethodBuilder& priority(int p) { return set("priority", std::to_string(p)); }
  MethodBuilder& requires_calibration(bool r) {
    return set("requires_calibration", r ? "true" : "false");
  }
  MethodBuilder& loading_attributes(const std::vector<std::string>& a) {
    return set("loading_attributes", yaml_string_list(a));
  }
  MethodBuilder& config_keys(const std::vector<std::string>& k) {
    return set("config_keys", yaml_string_list(k));
  }
};

// A whole manifest. Starts as a valid minimal one: id "acme", library "libacme.so", ABI 1.0,
// one method "acme_int4" on cpu.
class ManifestBuilder : public YamlMapBuilder<ManifestBuilder> {
 public:
  ManifestBuilder() {
    map_.set("schema", "1");
    id("acme");
    map_.set("name", yaml_quote("Acme test plugin"));
    map_.set("version", yaml_quote("1.0.0"));
    map_.set("vendor", yaml_quote("Acme"));
    map_.set("license", yaml_quote("Apache-2.0"));
    map_.set("library", yaml_quote("libacme.so"));
    YamlMap abi;
    abi.set("major", "1").set("min_minor", "0");
    map_.set_map("abi", std::move(abi));
    methods({MethodBuilder()});
  }

  ManifestBuilder& schema(int s) { return set("schema", std::to_string(s)); }
  ManifestBuilder& id(const std::string& id) {
    id_ = id;
    return set("id", yaml_quote(id));
  }
  ManifestBuilder& name(const std::string& n) { return set("name", yaml_quote(n)); }
  ManifestBuilder& version(const std::string& v) { return set("version", yaml_quote(v)); }
  ManifestBuilder& vendor(const std::string& v) { return set("vendor", yaml_quote(v)); }
  ManifestBuilder& license(const std::string& l) { return set("license", yaml_quote(l)); }
  ManifestBuilder& description(const std::string& d) { return set("description", yaml_quote(d)); }
  ManifestBuilder& library(const std::string& l) { return set("library", yaml_quote(l)); }
  ManifestBuilder& sha256(const std::string& hex) { return set("sha256", yaml_quote(hex)); }
  ManifestBuilder& abi_major(long major) {
    return ensure_abi().set("abi.major", std::to_string(major));
  }
  ManifestBuilder& abi_min_minor(long minor) {
    return ensure_abi().set("abi.min_minor", std::to_string(minor));
  }
  ManifestBuilder& requires_libtorch(const std::string& version) {
    if (!map_.has("requires")) map_.set_map("requires", YamlMap());
    return set("requires.libtorch", yaml_quote(version));
  }
  // Replaces all methods with these.
  ManifestBuilder& methods(const std::vector<MethodBuilder>& m) {
    std::vector<YamlMap> items;
    for (const MethodBuilder& method : m) items.push_back(method.map());
    map_.set_list("methods", std::move(items));
    return *this;
  }
  // Replaces all methods with this one.
  ManifestBuilder& method(const MethodBuilder& m) { return methods({m}); }
  ManifestBuilder& add_method(const MethodBuilder& m) {
    map_.append("methods", m.map());
    return *this;
  }
  // A top-level x_<vendor>_<name> key; `raw_yaml` as for set().
  ManifestBuilder& vendor_extra(const std::string& key, std::string raw_yaml) {
    return set(key, std::move(raw_yaml));
  }

  std::string yaml() const { return map_.emit(0); }
  // "<id>.yaml" (the id last given to id()).
  std::string file_name() const { return id_ + ".yaml"; }

  // Writes dir/<file_name()> (creating dir) and returns the path.
  std::filesystem::path write(const std::filesystem::path& dir) const {
    return write(dir, file_name());
  }
  std::filesystem::path write(const std::filesystem::path& dir, const std::string& name) const {
    std::filesystem::create_directories(dir);
    const std::filesystem::path path = dir / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << yaml();
    out.close();
    if (!out) throw std::runtime_error("ManifestBuilder: cannot write " + path.string());
    return path;
  }

 private:
  ManifestBuilder& ensure_abi() {
    if (!map_.has("abi")) map_.set_map("abi", YamlMap());
    return *this;
  }
  std::string id_;
};

}  // namespace qforge::test
