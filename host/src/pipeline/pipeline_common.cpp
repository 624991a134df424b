#include <qforge/qf_plugin.h>

#include <cctype>

#include "pipeline/pipeline_internal.hpp"

namespace qforge::pipeline {

int32_t module_kind(ModuleRole role) noexcept {
  switch (role) {
    case ModuleRole::kLinear:
    case ModuleRole::kOutputHead:
      return QF_MODULE_LINEAR;
    case ModuleRole::kConv1D:
      return QF_MODULE_CONV1D;
    case ModuleRole::kEmbedding:
      return QF_MODULE_EMBEDDING;
    case ModuleRole::kNorm:
    case ModuleRole::kOther:
      break;
  }
  return QF_MODULE_OTHER;
}

ModuleInfo module_info(const ModuleEntry& module) {
  ModuleInfo info;
  info.name = module.name;
  info.kind = module_kind(module.role);
  info.has_bias = module.bias.has_value();
  info.in_features = module.in_features;
  info.out_features = module.out_features;
  info.weight_dtype = module.weight_dtype;
  info.extra = module.extra();
  return info;
}

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i])) != 0;
    const bool db = std::isdigit(static_cast<unsigned char>(b[j])) != 0;
    if (da && db) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      // Compare digit runs by value without converting (runs may be longer than any integer):
      // strip leading zeros, then the longer run is larger, then lexicographic.
      size_t is = i, js = j;
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      if (ie - i != je - j) return ie - i < je - j;  // "01" after "1": any fixed tie-break
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

uint64_t tensor_bytes(const OutputTensor& tensor) {
  auto numel = checked_numel(tensor.shape);
  return numel.ok() ? static_cast<uint64_t>(numel.value()) * dtype_size(tensor.dtype) : 0;
}

Result<PreparedQuantizer> prepare_quantizer(Host& host, const ResolvedConfig& config,
                                            const nlohmann::json& request,
                                            const std::optional<std::string>& pinned_plugin) {
  SelectionRequest sr;
  sr.quant_method = config.quant_method;
  sr.config = config.config;
  sr.request = request;
  sr.pinned_plugin = pinned_plugin;
  PreparedQuantizer out;
  out.selection = host.select(sr);
  if (!out.selection.ok()) return out.selection.error();
  auto created = host.create_quantizer(out.selection.plugin_id, config.quant_method, config.config);
  if (!created.ok()) return created.error();
  out.quantizer = std::move(created).value();
  // select() validated a throw-away instance; this one must learn the environment too.
  Status valid = out.quantizer->validate_environment(host.environment().to_json(), request);
  if (!valid.ok()) {
    const Error& e = valid.error();
    return Error(e.code(), ExitCode::kEnvironment, e.summary(), e.why(), e.fix());
  }
  return out;
}

Result<ClassifiedModel> classify(const Checkpoint& checkpoint,
                                 const std::vector<std::filesystem::path>& dirs) {
  ClassifiedModel out;
  auto maps = load_architecture_maps(dirs.empty() ? default_architecture_dirs() : dirs);
  if (!maps.ok()) return maps.error();
  out.maps = std::make_shared<std::vector<ArchitectureMap>>(std::move(maps).value());
  auto map = select_architecture(*out.maps, checkpoint.config());
  if (!map.ok()) return map.error();
  auto layout = classify_modules(*map.value(), checkpoint);
  if (!layout.ok()) return layout.error();
  out.layout = std::move(layout).value();
  return out;
}

}  // namespace qforge::pipeline
