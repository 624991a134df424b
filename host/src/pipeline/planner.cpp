// make_plan: every decision of a quantize run, made before a single weight byte is read.
#include <qforge/qf_plugin.h>

#include <algorithm>
#include <set>

#include "pipeline/pipeline_internal.hpp"
#include "qforge/logging.hpp"

namespace qforge {
namespace {

using pipeline::natural_less;
using pipeline::tensor_bytes;

std::string device_of(const std::string& device) {
  if (device.empty()) return "cpu";
  return device;
}

Result<OutputTensor> output_of(const TensorInfo& info) {
  return OutputTensor{info.name, info.dtype, info.shape};
}

// The tensors quantize will produce for `module`, as full names, from describe_quantized.
Result<std::vector<OutputTensor>> described_outputs(Quantizer& quantizer, const ModuleInfo& info) {
  auto described = quantizer.describe_quantized(info);
  if (!described.ok()) {
    const Error& e = described.error();
    if (e.code() == ErrorCode::kUnimplemented) {
      return plugin_error("plugin '" + quantizer.plugin_id() + "' cannot describe its output",
                          "describe_quantized is not implemented, so the output checkpoint's "
                          "layout cannot be planned",
                          "use a plugin that implements describe_quantized");
    }
    return e;
  }
  std::vector<OutputTensor> outputs;
  for (const auto& t : described.value().at("tensors")) {
    auto dtype = dtype_from_string(t.at("dtype").get<std::string>());
    if (!dtype.ok()) return dtype.error();
    outputs.push_back(OutputTensor{info.name + "." + t.at("name").get<std::string>(), dtype.value(),
                                   t.at("shape").get<std::vector<int64_t>>()});
  }
  return outputs;
}

}  // namespace

const char* module_action_name(ModuleAction action) noexcept {
  switch (action) {
    case ModuleAction::kQuantize:
      return "quantize";
    case ModuleAction::kKeep:
      return "keep";
    case ModuleAction::kAlreadyQuantized:
      return "already-quantized";
  }
  return "?";
}

Result<Plan> make_plan(Host& host, const Checkpoint& checkpoint, const PlanRequest& request) {
  auto log = get_logger("plan");
  Plan plan;
  ConfigRequest config_request = request.config;
  if (checkpoint.has_config_file()) config_request.model_config = checkpoint.config();
  auto resolved = host.resolve(config_request);
  if (!resolved.ok()) return resolved.error();
  plan.config = std::move(resolved).value();
  plan.warnings = plan.config.warnings;
  if (!plan.config.quantize) {
    plan.nothing_to_do = true;
    plan.note = plan.config.note.empty() ? "no quantization config was given" : plan.config.note;
    return plan;
  }
  if (plan.config.pre_quantized) {
    plan.nothing_to_do = true;
    plan.note = "the checkpoint is already quantized (" + plan.config.quant_method +
                ", config.json has quantization_config); it is not quantized again";
    return plan;
  }

  // Pre-flight: environment and configuration, before any tensor data is touched.
  nlohmann::json req = {{"pre_quantized", false},
                        {"dtype", request.dtype ? nlohmann::json(*request.dtype) : nullptr},
                        {"device", device_of(request.device)},
                        {"device_map", nullptr},
                        {"allow_emulation", request.allow_emulation}};
  auto prepared = pipeline::prepare_quantizer(host, plan.config, req, request.pinned_plugin);
  if (!prepared.ok()) return prepared.error();
  plan.selection = std::move(prepared.value().selection);
  plan.quantizer = std::move(prepared.value().quantizer);
  Quantizer& quantizer = *plan.quantizer;
  if ((quantizer.flags() & QF_METHOD_REQUIRES_CALIBRATION) != 0) {
    plan.calibration = "hessian";
    for (const auto& record : host.plugins()) {
      if (record.id() != plan.selection.plugin_id || !record.manifest) continue;
      for (const auto& method : record.manifest->methods) {
        if (method.quant_method == quantizer.quant_method()) plan.calibration = method.calibration;
      }
    }
  }
  auto dtype = quantizer.update_dtype(request.dtype.value_or(""));
  if (!dtype.ok()) return dtype.error();
  // Like transformers v5's dtype="auto": tensors kept dense stay in their stored dtype; the
  // hook's answer is recorded (it is what a None dtype would have become).
  plan.dtype = request.dtype.value_or("auto");
  auto device_map = quantizer.update_device_map(nullptr);
  if (!device_map.ok()) return device_map.error();
  plan.device_map = device_map.value();

  auto classified = pipeline::classify(checkpoint, request.architecture_dirs);
  if (!classified.ok()) return classified.error();
  const ModelLayout& layout = classified.value().layout;
  plan.family = layout.map != nullptr ? layout.map->family : "generic";

  for (const ModuleEntry& module : layout.modules) {
    PlannedModule pm;
    pm.module = module;
    pm.info = pipeline::module_info(module);
    for (const auto& name : module.tensors) {
      const TensorInfo* t = checkpoint.find(name);
      if (t != nullptr) pm.bytes_before += t->nbytes;
    }
    const bool dense_weight =
        module.weight.has_value() && module.weight_shape.size() == 2 &&
        (module.weight_dtype.code == kDLFloat || module.weight_dtype.code == kDLBfloat);
    bool quantize = false;
    if (module.role == ModuleRole::kEmbedding || module.role == ModuleRole::kNorm) {
      // transformers replaces nn.Linear (and Conv1D) only; naming the role says why at a glance.
      pm.reason = std::string(module_role_name(module.role)) + ": not a linear layer";
    } else if (!dense_weight) {
      pm.reason = module.weight ? "weight is not a dense 2-D floating tensor (" +
                                      dtype_to_string(module.weight_dtype) + " " +
                                      pipeline::shape_text(module.weight_shape) + ")"
                                : "has no weight tensor";
    } else {
      auto needed = quantizer.needs_quantization(pm.info);
      if (!needed.ok()) return needed.error();
      quantize = needed.value().first;
      if (!quantize) pm.reason = needed.value().second;
    }
    if (quantize) {
      auto outputs = described_outputs(quantizer, pm.info);
      if (!outputs.ok()) return outputs.error();
      pm.outputs = std::move(outputs).value();
      // Everything of the module except the weight is carried over (bias, buffers).
      for (const auto& name : module.tensors) {
        if (name == *module.weight) continue;
        pm.outputs.push_back(output_of(*checkpoint.find(name)).value());
      }
      pm.action = ModuleAction::kQuantize;
      ++plan.quantized;
    } else {
      for (const auto& name : module.tensors) {
        pm.outputs.push_back(output_of(*checkpoint.find(name)).value());
      }
      pm.action = ModuleAction::kKeep;
      ++plan.kept;
    }
    for (const auto& t : pm.outputs) pm.bytes_after += tensor_bytes(t);
    plan.modules.push_back(std::move(pm));
  }
  plan.loose_tensors = layout.loose_tensors;

  std::set<std::string> names;
  for (const auto& pm : plan.modules) {
    for (const auto& t : pm.outputs) plan.layout.push_back(t);
  }
  for (const auto& name : plan.loose_tensors) {
    plan.layout.push_back(output_of(*checkpoint.find(name)).value());
  }
  for (const auto& t : plan.layout) {
    if (!names.insert(t.name).second) {
      return plugin_error("two outputs are named '" + t.name + "'",
                          "a quantized module's tensor collides with another tensor of the "
                          "checkpoint",
                          "report to the plugin vendor; rename or skip the module");
    }
    plan.bytes_after += tensor_bytes(t);
  }
  std::stable_sort(
      plan.layout.begin(), plan.layout.end(),
      [](const OutputTensor& a, const OutputTensor& b) { return natural_less(a.name, b.name); });
  plan.bytes_before = checkpoint.total_tensor_bytes();
  if (plan.quantized == 0) {
    plan.warnings.push_back(
        "no module will be quantized: every module was skipped (see the reasons); the output "
        "would equal the input");
  }

  auto qconfig = quantizer.postprocess(checkpoint.config());
  if (!qconfig.ok()) return qconfig.error();
  plan.quantization_config = qconfig.value();
  plan.output_config = checkpoint.config();
  plan.output_config["quantization_config"] = plan.quantization_config;
  plan.output_config.erase("_pre_quantization_dtype");
  log->info("plan: {} modules to quantize, {} kept, {} -> {} bytes", plan.quantized, plan.kept,
            plan.bytes_before, plan.bytes_after);
  return plan;
}

}  // namespace qforge
