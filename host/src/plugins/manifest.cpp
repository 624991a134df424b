// Manifest schema v1 (docs/manifest.md): every field checked, every error names the file and the
// field path. The YAML itself is read by the strict reader in manifest_yaml.cpp; typed field
// readers live in manifest_fields.cpp.
#include "qforge/manifest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "plugins/manifest_fields.hpp"
#include "plugins/manifest_yaml.hpp"
#include "qforge/verify.hpp"

namespace qforge {
namespace {

using plugins::check_plain_word;
using plugins::describe;
using plugins::field_error;
using plugins::index_path;
using plugins::is_valid_manifest_name;
using plugins::join_path;
using plugins::kManifestMaxLineLength;
using plugins::kManifestMaxNameLength;
using plugins::kManifestSchemaDoc;
using plugins::ManifestCtx;
using plugins::MapFields;
using plugins::quote_for_message;
using plugins::read_bool;
using plugins::read_int;
using plugins::read_name;
using plugins::read_string;
using plugins::read_string_list;
using plugins::type_error;
using plugins::yaml_to_json;
using plugins::YamlNode;

constexpr std::size_t kMaxDescriptionLength = 4096;

// --- devices ----------------------------------------------------------------------------------

// "7.5", "8", 7.5 -> (7, 5): one or two digits, optionally '.' and one digit.
bool parse_compute_capability(const std::string& s, int* major, int* minor) {
  const std::size_t dot = s.find('.');
  const std::string major_text = s.substr(0, dot);
  const std::string minor_text = dot == std::string::npos ? "0" : s.substr(dot + 1);
  auto digits = [](const std::string& t, std::size_t max_len) {
    return !t.empty() && t.size() <= max_len &&
           std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(major_text, 2) || !digits(minor_text, 1)) return false;
  *major = std::stoi(major_text);
  *minor = std::stoi(minor_text);
  return true;
}

std::string check_cpu_feature(const std::string& v) {
  if (v.empty() || v.size() > kManifestMaxNameLength) return "a feature name is 1-64 characters";
  for (char c : v) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) {
      return "CPU features are lowercase names such as avx2, avx512f, sse4_2, neon";
    }
  }
  return "";
}

std::string check_gfx_arch(const std::string& v) {
  const char* rule = "ROCm archs look like gfx90a, gfx942 or gfx90a:xnack+";
  if (v.size() < 4 || v.size() > kManifestMaxNameLength || v.compare(0, 3, "gfx") != 0) return rule;
  for (char c : v) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '+' || c == '-')) {
      return rule;
    }
  }
  return "";
}

Status parse_device(const ManifestCtx& ctx, const YamlNode& node, const std::string& path,
                    DeviceRequirement* out) {
  if (!node.is_map()) {
    return type_error(ctx, path, node, "a mapping", "write e.g. '- type: cuda'");
  }
  MapFields fields(ctx, node, path,
                   {{"type", true, "type: cuda"},
                    {"cpu_features", false, "cpu_features: [avx2]"},
                    {"min_compute_capability", false, "min_compute_capability: \"7.5\""},
                    {"gcn_archs", false, "gcn_archs: [gfx90a, gfx942]"}});
  QF_RETURN_IF_ERROR(fields.check_keys(nullptr));
  const YamlNode& type = *fields.find("type");
  if (!type.is_scalar() || (type.value != "cpu" && type.value != "cuda" && type.value != "rocm")) {
    return field_error(ctx, fields.path_of("type"), &type,
                       "expected one of cpu, cuda, rocm, got " + describe(type),
                       "device types are cpu, cuda and rocm", "write e.g. 'type: cuda'");
  }
  out->type = type.value;
  // Each requirement belongs to exactly one device type; elsewhere it would be ignored.
  const struct {
    const char* key;
    const char* type;
  } kOwner[] = {{"cpu_features", "cpu"}, {"min_compute_capability", "cuda"}, {"gcn_archs", "rocm"}};
  for (const auto& owner : kOwner) {
    const YamlNode* v = fields.find(owner.key);
    if (v != nullptr && out->type != owner.type) {
      return field_error(
          ctx, fields.path_of(owner.key), v, "only allowed on type " + std::string(owner.type),
          "'" + std::string(owner.key) + "' applies to " + owner.type +
              " devices, but this device is " + out->type,
          "move it to a '- type: " + std::string(owner.type) + "' entry or remove it");
    }
  }
  if (const YamlNode* v = fields.find("cpu_features")) {
    QF_RETURN_IF_ERROR(read_string_list(ctx, fields.path_of("cpu_features"), *v, "[avx2, fma]",
                                        check_cpu_feature, &out->cpu_features));
  }
  if (const YamlNode* v = fields.find("gcn_archs")) {
    QF_RETURN_IF_ERROR(read_string_list(ctx, fields.path_of("gcn_archs"), *v, "[gfx90a, gfx942]",
                                        check_gfx_arch, &out->gcn_archs));
  }
  if (const YamlNode* v = fields.find("min_compute_capability")) {
    int major = 0;
    int minor = 0;
    if (!v->is_scalar() || !parse_compute_capability(v->value, &major, &minor)) {
      return field_error(ctx, fields.path_of("min_compute_capability"), v,
                         "expected \"major.minor\", got " + describe(*v),
                         "a compute capability is a major and a one-digit minor version, such "
                         "as 7.5 or 9.0",
                         "write e.g. 'min_compute_capability: \"7.5\"'");
    }
    out->min_cc_major = major;
    out->min_cc_minor = minor;
  }
  return ok_status();
}

// --- methods ----------------------------------------------------------------------------------

// `verify:`: threshold by `qforge verify` check id (docs/verify.md). Shares (cosine, top-1,
// agreement) lie in [0, 1]; the other figures are >= 0.
Status parse_verify(const ManifestCtx& ctx, const YamlNode& node, const std::string& path,
                    std::map<std::string, double>* out) {
  const std::vector<std::string>& ids = threshold_check_ids();
  std::string known;
  for (const auto& id : ids) known += (known.empty() ? "" : ", ") + id;
  if (!node.is_map()) {
    return type_error(ctx, path, node, "a mapping of check id to threshold",
                      "write e.g. 'verify: {top1: 0.8, kl: 0.1}'");
  }
  for (std::size_t i = 0; i < node.keys.size(); ++i) {
    const std::string& id = node.keys[i].value;
    const std::string field = join_path(path, plugins::escape_key(id));
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
      return field_error(ctx, field, &node.keys[i], "unknown check " + quote_for_message(id),
                         "checks that take a threshold: " + known, "use one of those ids");
    }
    const YamlNode& value = node.values[i];
    auto json = plugins::yaml_to_json(ctx, value, field);
    if (!json.ok()) return json.error();
    if (!value.is_scalar() || !value.plain || !json.value().is_number()) {
      return type_error(ctx, field, value, "a number", "write e.g. '" + id + ": 0.8'");
    }
    const double v = json.value().get<double>();
    const bool share =
        id == "logit_cosine" || id == "top1" || id == "generation" || id == "embedding_cosine";
    if (v < 0 || (share && v > 1)) {
      return field_error(ctx, field, &value, "threshold " + value.value + " is out of range",
                         share ? "this figure is a share: 0 to 1" : "this figure is >= 0",
                         "give a value in range");
    }
    (*out)[id] = v;
  }
  return ok_status();
}

Status parse_method(const ManifestCtx& ctx, const YamlNode& node, const std::string& path,
                    MethodManifest* out) {
  if (!node.is_map()) {
    return type_error(ctx, path, node, "a mapping",
                      "write each method as a mapping, e.g. '- quant_method: acme_int4'");
  }
  MapFields fields(ctx, node, path,
                   {{"quant_method", true, "quant_method: acme_int4"},
                    {"aliases", false, "aliases: [acme4]"},
                    {"presets", false, "presets: {fast: {bits: 4}}"},
                    {"devices", true, "devices: [{type: cpu}]"},
                    {"priority", false, "priority: 100"},
                    {"requires_calibration", false, "requires_calibration: false"},
                    {"calibration", false, "calibration: hessian"},
                    {"loading_attributes", false, "loading_attributes: [group_size]"},
                    {"config_keys", false, "config_keys: [bits, group_size]"},
                    {"verify", false, "verify: {top1: 0.8, kl: 0.1}"}});
  QF_RETURN_IF_ERROR(fields.check_keys(nullptr));
  QF_RETURN_IF_ERROR(read_name(ctx, fields.path_of("quant_method"), *fields.find("quant_method"),
                               "quant_method", "acme_int4", &out->quant_method));
  if (const YamlNode* v = fields.find("aliases")) {
    auto check = [&](const std::string& a) -> std::string {
      if (!is_valid_manifest_name(a)) {
        return "an alias is 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter "
               "or digit";
      }
      if (a == out->quant_method) return "an alias must differ from the method's own name";
      return "";
    };
    QF_RETURN_IF_ERROR(
        read_string_list(ctx, fields.path_of("aliases"), *v, "[acme4]", check, &out->aliases));
  }
  if (const YamlNode* v = fields.find("presets")) {
    const std::string presets_path = fields.path_of("presets");
    if (!v->is_map()) {
      return type_error(ctx, presets_path, *v, "a mapping of preset name to config",
                        "write e.g. 'presets: {fast: {bits: 4}}'");
    }
    for (std::size_t i = 0; i < v->keys.size(); ++i) {
      const std::string& name = v->keys[i].value;
      const std::string preset_path = join_path(presets_path, plugins::escape_key(name));
      if (!is_valid_manifest_name(name)) {
        return field_error(ctx, preset_path, &v->keys[i],
                           "invalid preset name " + quote_for_message(name),
                           "a preset name is 1-64 characters of a-z, 0-9, '_', '.', '-', "
                           "starting with a letter or digit",
                           "rename it, e.g. 'nf4'");
      }
      const YamlNode& config = v->values[i];
      if (!config.is_map()) {
        return type_error(ctx, preset_path, config, "a mapping (the preset's config)",
                          "write e.g. '" + name + ": {bits: 4}'");
      }
      auto json = yaml_to_json(ctx, config, preset_path);
      if (!json.ok()) return json.error();
      out->presets[name] = std::move(json).value();
    }
  }
  const YamlNode& devices = *fields.find("devices");
  const std::string devices_path = fields.path_of("devices");
  if (!devices.is_sequence() || devices.items.empty()) {
    return field_error(
        ctx, devices_path, &devices,
        "expected a non-empty list of devices, got " +
            (devices.is_sequence() ? std::string("an empty list") : describe(devices)),
        "a method must name at least one device type it runs on",
        "write e.g. 'devices: [{type: cpu}, {type: cuda, "
        "min_compute_capability: \"7.5\"}]'");
  }
  for (std::size_t i = 0; i < devices.items.size(); ++i) {
    DeviceRequirement device;
    QF_RETURN_IF_ERROR(parse_device(ctx, devices.items[i], index_path(devices_path, i), &device));
    for (std::size_t j = 0; j < out->devices.size(); ++j) {
      if (out->devices[j].type == device.type) {
        return field_error(ctx, index_path(devices_path, i) + ".type", &devices.items[i],
                           "duplicate device type '" + device.type + "'",
                           "devices[" + std::to_string(j) + "] already describes " + device.type +
                               "; two entries would make the requirement ambiguous",
                           "merge the two entries into one");
      }
    }
    out->devices.push_back(std::move(device));
  }
  if (const YamlNode* v = fields.find("priority")) {
    int64_t priority = 0;
    QF_RETURN_IF_ERROR(read_int(ctx, fields.path_of("priority"), *v,
                                std::numeric_limits<int32_t>::min(),
                                std::numeric_limits<int32_t>::max(), "priority: 100", &priority));
    out->priority = static_cast<int>(priority);
  }
  if (const YamlNode* v = fields.find("requires_calibration")) {
    QF_RETURN_IF_ERROR(read_bool(ctx, fields.path_of("requires_calibration"), *v,
                                 "requires_calibration", &out->requires_calibration));
  }
  if (const YamlNode* v = fields.find("calibration")) {
    const std::string calibration_path = fields.path_of("calibration");
    QF_RETURN_IF_ERROR(read_string(ctx, calibration_path, *v, "calibration: hessian", true, true,
                                   64, &out->calibration));
    if (out->calibration != "hessian" && out->calibration != "activation_scaling") {
      return field_error(ctx, calibration_path, v, "unknown calibration '" + out->calibration + "'",
                         "the host offers 'hessian' (each linear's GPTQ Hessian) and "
                         "'activation_scaling' (AWQ's scale and clip search)",
                         "write 'calibration: hessian' or 'calibration: activation_scaling'");
    }
  }
  if (const YamlNode* v = fields.find("loading_attributes")) {
    QF_RETURN_IF_ERROR(read_string_list(ctx, fields.path_of("loading_attributes"), *v,
                                        "[group_size]", check_plain_word,
                                        &out->loading_attributes));
  }
  if (const YamlNode* v = fields.find("config_keys")) {
    QF_RETURN_IF_ERROR(read_string_list(ctx, fields.path_of("config_keys"), *v,
                                        "[bits, group_size]", check_plain_word, &out->config_keys));
  }
  if (const YamlNode* v = fields.find("verify")) {
    QF_RETURN_IF_ERROR(parse_verify(ctx, *v, fields.path_of("verify"), &out->verify_thresholds));
  }
  return ok_status();
}

// Method names, aliases and preset names share one namespace: each selects a method, so any
// overlap would make a selection ambiguous.
Status check_method_names(const ManifestCtx& ctx, const YamlNode& methods_node,
                          const std::vector<MethodManifest>& methods) {
  std::map<std::string, std::string> owner;  // name -> path of its first definition
  auto claim = [&](const std::string& name, const std::string& path, const YamlNode* node,
                   const char* kind) -> Status {
    const auto [it, inserted] = owner.emplace(name, path);
    if (inserted) return ok_status();
    return field_error(ctx, path, node, "duplicate " + std::string(kind) + " '" + name + "'",
                       "'" + name + "' is already defined at '" + it->second +
                           "'; method names, aliases and preset names must all be distinct "
                           "within a manifest",
                       "rename or remove one of them");
  };
  for (std::size_t i = 0; i < methods.size(); ++i) {
    const std::string path = index_path("methods", i);
    QF_RETURN_IF_ERROR(claim(methods[i].quant_method, path + ".quant_method",
                             &methods_node.items[i], "quant_method"));
  }
  for (std::size_t i = 0; i < methods.size(); ++i) {
    const std::string path = index_path("methods", i);
    for (std::size_t a = 0; a < methods[i].aliases.size(); ++a) {
      QF_RETURN_IF_ERROR(claim(methods[i].aliases[a], index_path(path + ".aliases", a),
                               &methods_node.items[i], "alias"));
    }
    for (const auto& [name, config] : methods[i].presets) {
      QF_RETURN_IF_ERROR(
          claim(name, path + ".presets." + name, &methods_node.items[i], "preset name"));
    }
  }
  return ok_status();
}

// --- library path -----------------------------------------------------------------------------

Status read_library(const ManifestCtx& ctx, const YamlNode& node,
                    const std::filesystem::path& folder, PluginManifest* out) {
  std::string text;
  QF_RETURN_IF_ERROR(
      read_string(ctx, "library", node, "library: libacme.so", true, true, 4096, &text));
  const std::filesystem::path library(text);
  const std::string fix =
      "write a path relative to the manifest's folder, e.g. 'library: "
      "libacme.so', and put the library beside the manifest";
  if (library.has_root_path()) {
    return field_error(ctx, "library", &node, "absolute path " + quote_for_message(text),
                       "the library must be given relative to the manifest's folder so a "
                       "manifest can only load code shipped with it",
                       fix);
  }
  const std::filesystem::path normal = library.lexically_normal();
  if (!normal.empty() && *normal.begin() == "..") {
    return field_error(ctx, "library", &node,
                       "path " + quote_for_message(text) + " leaves the manifest's folder",
                       "after normalising, the path is " + quote_for_message(normal.string()) +
                           "; it must name a file inside the manifest's folder",
                       fix);
  }
  if (normal.empty() || normal == "." || !normal.has_filename()) {
    return field_error(ctx, "library", &node, "path " + quote_for_message(text) + " names a folder",
                       "after normalising, the path is " + quote_for_message(normal.string()) +
                           "; it must name the shared library file",
                       fix);
  }
  out->library = library;
  out->library_path = (folder / normal).lexically_normal();
  return ok_status();
}

// --- the manifest -----------------------------------------------------------------------------

Status parse_top_level(const ManifestCtx& ctx, const YamlNode& root,
                       const std::filesystem::path& folder, PluginManifest* m) {
  if (!root.is_map()) {
    return bad_input(
        ctx.source + ": the manifest must be a YAML mapping",
        "the document is " + describe(root) + "; expected keys such as 'schema: 1'",
        std::string("write the manifest fields as 'key: value' lines; ") + kManifestSchemaDoc);
  }
  MapFields fields(
      ctx, root, "",
      {{"schema", true, "schema: 1"},
       {"id", true, "id: acme_int4"},
       {"name", true, "name: Acme int4"},
       {"version", true, "version: 1.0.0"},
       {"vendor", true, "vendor: Acme"},
       {"license", true, "license: Apache-2.0"},
       {"description", false, "description: what the plugin does"},
       {"library", true, "library: libacme.so"},
       {"sha256", false, "sha256: <64 lowercase hex digits>"},
       {"abi", true, "abi: {major: 1, min_minor: 0}"},
       {"requires", false, "requires: {libtorch: \"1.13\"}"},
       {"methods", true, "methods: [{quant_method: acme_int4, devices: [{type: cpu}]}]"}});
  QF_RETURN_IF_ERROR(fields.check_keys(&m->vendor_extras));

  int64_t schema = 0;
  QF_RETURN_IF_ERROR(read_int(ctx, "schema", *fields.find("schema"), 0,
                              std::numeric_limits<int32_t>::max(), "schema: 1", &schema));
  if (schema != kManifestSchemaVersion) {
    return field_error(ctx, "schema", fields.find("schema"),
                       "unsupported schema version " + std::to_string(schema),
                       "this qforge reads manifest schema " +
                           std::to_string(kManifestSchemaVersion) + "; the file declares " +
                           std::to_string(schema),
                       "write 'schema: 1' and follow docs/manifest.md, or use a qforge that "
                       "reads schema " +
                           std::to_string(schema));
  }
  m->schema = static_cast<int>(schema);
  QF_RETURN_IF_ERROR(read_name(ctx, "id", *fields.find("id"), "plugin id", "acme_int4", &m->id));
  const struct {
    const char* key;
    std::string* out;
  } kLines[] = {{"name", &m->name},
                {"version", &m->version},
                {"vendor", &m->vendor},
                {"license", &m->license}};
  for (const auto& line : kLines) {
    QF_RETURN_IF_ERROR(read_string(ctx, line.key, *fields.find(line.key), fields.example(line.key),
                                   true, true, kManifestMaxLineLength, line.out));
  }
  if (const YamlNode* v = fields.find("description")) {
    QF_RETURN_IF_ERROR(read_string(ctx, "description", *v, fields.example("description"), false,
                                   false, kMaxDescriptionLength, &m->description));
  }
  QF_RETURN_IF_ERROR(read_library(ctx, *fields.find("library"), folder, m));
  if (const YamlNode* v = fields.find("sha256")) {
    const bool hex64 = v->is_scalar() && v->value.size() == 64 &&
                       std::all_of(v->value.begin(), v->value.end(), [](char c) {
                         return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                       });
    if (!hex64) {
      return field_error(
          ctx, "sha256", v, "expected 64 lowercase hex digits, got " + describe(*v),
          "a SHA-256 digest is 64 characters of 0-9 and a-f" +
              (v->is_scalar() ? " (this value has " + std::to_string(v->value.size()) + ")"
                              : std::string()),
          "write the output of 'sha256sum <library>' in lowercase, or remove "
          "the key");
    }
    m->sha256 = v->value;
  }

  const YamlNode& abi = *fields.find("abi");
  if (!abi.is_map()) {
    return type_error(ctx, "abi", abi, "a mapping", "write 'abi: {major: 1, min_minor: 0}'");
  }
  MapFields abi_fields(ctx, abi, "abi",
                       {{"major", true, "major: 1"}, {"min_minor", true, "min_minor: 0"}});
  QF_RETURN_IF_ERROR(abi_fields.check_keys(nullptr));
  // The loader compares major with the host's; here it is only a well-formed number.
  int64_t abi_major = 0;
  int64_t abi_min_minor = 0;
  constexpr int64_t kU32Max = std::numeric_limits<uint32_t>::max();
  QF_RETURN_IF_ERROR(
      read_int(ctx, "abi.major", *abi_fields.find("major"), 0, kU32Max, "major: 1", &abi_major));
  QF_RETURN_IF_ERROR(read_int(ctx, "abi.min_minor", *abi_fields.find("min_minor"), 0, kU32Max,
                              "min_minor: 0", &abi_min_minor));
  m->abi_major = static_cast<uint32_t>(abi_major);
  m->abi_min_minor = static_cast<uint32_t>(abi_min_minor);

  if (const YamlNode* v = fields.find("requires")) {
    if (!v->is_map()) {
      return type_error(ctx, "requires", *v, "a mapping",
                        "write e.g. 'requires: {libtorch: \"1.13\"}' or remove the key");
    }
    MapFields req(ctx, *v, "requires", {{"libtorch", false, "libtorch: \"1.13\""}});
    QF_RETURN_IF_ERROR(req.check_keys(nullptr));
    if (const YamlNode* t = req.find("libtorch")) {
      std::string version;
      QF_RETURN_IF_ERROR(read_string(ctx, "requires.libtorch", *t, "libtorch: \"1.13\"", true, true,
                                     kManifestMaxLineLength, &version));
      m->requires_libtorch = version;
    }
  }

  const YamlNode& methods = *fields.find("methods");
  if (!methods.is_sequence() || methods.items.empty()) {
    return field_error(
        ctx, "methods", &methods,
        "expected a non-empty list of methods, got " +
            (methods.is_sequence() ? std::string("an empty list") : describe(methods)),
        "a plugin must declare at least one quantization method",
        "write e.g. 'methods: [{quant_method: acme_int4, devices: [{type: "
        "cpu}]}]'");
  }
  for (std::size_t i = 0; i < methods.items.size(); ++i) {
    MethodManifest method;
    QF_RETURN_IF_ERROR(parse_method(ctx, methods.items[i], index_path("methods", i), &method));
    m->methods.push_back(std::move(method));
  }
  return check_method_names(ctx, methods, m->methods);
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// Closes a descriptor on every path out of load_manifest.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_;
};

}  // namespace

Result<PluginManifest> parse_manifest_text(const std::string& text, const std::string& source,
                                           const std::filesystem::path& folder) {
  try {
    if (text.size() > kManifestMaxBytes) {
      return bad_input(
          source + ": manifest too large",
          "the text is " + std::to_string(text.size()) + " bytes; the limit is " +
              std::to_string(kManifestMaxBytes) + " bytes (a manifest is a few KiB)",
          "check that this is really a plugin manifest; " + std::string(kManifestSchemaDoc));
    }
    auto root = plugins::parse_strict_yaml(text, source);
    if (!root.ok()) return root.error();
    const ManifestCtx ctx{source};
    PluginManifest manifest;
    manifest.path = folder / source;
    QF_RETURN_IF_ERROR(parse_top_level(ctx, root.value(), folder, &manifest));
    return manifest;
  } catch (const std::bad_alloc&) {
    return Error(ErrorCode::kResourceExhausted, ExitCode::kBadInput,
                 source + ": out of memory while reading the manifest",
                 "an allocation failed while validating it",
                 "check that the file is a real manifest (a few KiB)");
  } catch (const std::exception& e) {
    // Nothing above should throw; if something does, it is a qforge bug, not the vendor's.
    return internal_error(source + ": manifest validation failed unexpectedly",
                          std::string("exception: ") + e.what());
  }
}

Result<PluginManifest> load_manifest(const std::filesystem::path& path) {
  const std::string shown = path.string();
  const std::string fix_path = "check the path; a manifest is a regular .yaml file";
  struct stat link_info {};
  if (::lstat(path.c_str(), &link_info) != 0) {
    const int err = errno;
    return bad_input(shown + ": cannot read manifest", "lstat failed: " + errno_text(err),
                     fix_path);
  }
  // A symlink is followed; errors about the file then name the file it points to.
  std::string target = shown;    // for messages
  std::string resolved = shown;  // for the chmod hint
  if (S_ISLNK(link_info.st_mode)) {
    std::error_code ec;
    const std::filesystem::path real = std::filesystem::canonical(path, ec);
    if (ec) {
      return bad_input(shown + ": cannot read manifest",
                       "it is a symlink whose target cannot be resolved: " + ec.message(),
                       "fix or remove the dangling symlink");
    }
    resolved = real.string();
    target = resolved + " (symlink target of " + shown + ")";
  }
  // O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    return bad_input(target + ": cannot open manifest", "open failed: " + errno_text(err),
                     "check that the file exists and is readable");
  }
  FdCloser closer(fd);
  // Checks run on the opened descriptor, so the file read is the file checked.
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int err = errno;
    return bad_input(target + ": cannot read manifest", "fstat failed: " + errno_text(err),
                     fix_path);
  }
  if (!S_ISREG(info.st_mode)) {
    return bad_input(target + ": not a regular file",
                     "a manifest must be a regular file; this is a directory, device, FIFO or "
                     "socket",
                     fix_path);
  }
  if ((info.st_mode & S_IWOTH) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(info.st_mode & 07777));
    return bad_input(target + ": manifest is world-writable",
                     std::string("its mode is ") + mode +
                         "; any local user could change which library qforge loads",
                     "run 'chmod o-w " + resolved + "'");
  }
  if (static_cast<std::uintmax_t>(info.st_size) > kManifestMaxBytes) {
    return bad_input(target + ": manifest too large",
                     "the file is " + std::to_string(info.st_size) + " bytes; the limit is " +
                         std::to_string(kManifestMaxBytes) + " bytes (a manifest is a few KiB)",
                     "check that this is really a plugin manifest");
  }
  // Read at most one byte past the cap: a file that grew after fstat is still refused.
  std::string text;
  text.resize(static_cast<std::size_t>(kManifestMaxBytes) + 1);
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      return bad_input(target + ": cannot read manifest", "read failed: " + errno_text(err),
                       fix_path);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  auto parsed = parse_manifest_text(text, path.filename().string(), path.parent_path());
  if (!parsed.ok()) return parsed.error();
  PluginManifest manifest = std::move(parsed).value();
  manifest.path = path;
  return manifest;
}

}  // namespace qforge
