// inspect_checkpoint: what a checkpoint holds, and whether every quantized module's tensor set
// is complete and consistent according to the plugin that serves its method.
#include "pipeline/pipeline_internal.hpp"

namespace qforge {
namespace {

bool is_float(DLDataType d) { return d.code == kDLFloat || d.code == kDLBfloat; }

// A module stored as its method's tensor set rather than a dense weight (+ bias).
bool looks_quantized(const ModuleEntry& module) {
  if (!module.weight) return !module.tensors.empty();
  if (!is_float(module.weight_dtype)) return true;
  for (const auto& name : module.tensors) {
    if (name != *module.weight && (!module.bias || name != *module.bias)) return true;
  }
  return false;
}

}  // namespace

Result<Inspection> inspect_checkpoint(Host& host, const Checkpoint& checkpoint,
                                      const std::vector<std::filesystem::path>& architecture_dirs) {
  Inspection out;
  std::shared_ptr<Quantizer> quantizer;
  if (checkpoint.quantization_config()) {
    ConfigRequest request;
    request.model_config = checkpoint.config();
    auto resolved = host.resolve(request);
    if (!resolved.ok()) return resolved.error();
    out.config = resolved.value();
    for (const auto& w : resolved.value().warnings) out.warnings.push_back(w);
    // Inspecting only checks stored tensors (no forward runs), so emulation is no concern here.
    nlohmann::json req = {{"pre_quantized", true},
                          {"dtype", nullptr},
                          {"device", "cpu"},
                          {"device_map", nullptr},
                          {"allow_emulation", true}};
    auto prepared = pipeline::prepare_quantizer(host, *out.config, req, std::nullopt);
    if (prepared.ok()) {
      out.plugin_id = prepared.value().selection.plugin_id;
      quantizer = prepared.value().quantizer;
    } else {
      out.warnings.push_back("quantized modules were not checked: " + prepared.error().to_string());
    }
  }
  auto classified = pipeline::classify(checkpoint, architecture_dirs);
  if (!classified.ok()) return classified.error();
  const ModelLayout& layout = classified.value().layout;
  out.family = layout.map != nullptr ? layout.map->family : "generic";
  out.loose_tensors = layout.loose_tensors;
  out.total_bytes = checkpoint.total_tensor_bytes();

  for (const ModuleEntry& module : layout.modules) {
    InspectedModule im;
    im.module = module;
    for (const auto& name : module.tensors) {
      im.tensors.push_back(*checkpoint.find(name));
      im.bytes += im.tensors.back().nbytes;
    }
    if (!looks_quantized(module)) {
      im.status = "dense";
      ++out.dense;
    } else if (quantizer == nullptr) {
      im.status = out.config ? "quantized (not checked)"
                             : "invalid: not a dense module, and "
                               "config.json has no "
                               "quantization_config";
      if (out.config) {
        ++out.quantized;
      } else {
        ++out.problems;
      }
    } else {
      std::vector<NamedView> views;
      for (const auto& name : module.tensors) {
        auto view = checkpoint.view(name);
        if (!view.ok()) return view.error();
        views.push_back(NamedView{name.substr(module.name.size() + 1), std::move(view).value()});
      }
      Status checked = quantizer->check_quantized(pipeline::module_info(module), views);
      if (checked.ok()) {
        im.status = "quantized";
        ++out.quantized;
      } else {
        im.status = "invalid: " + checked.error().to_string();
        ++out.problems;
      }
    }
    out.modules.push_back(std::move(im));
  }
  return out;
}

}  // namespace qforge
