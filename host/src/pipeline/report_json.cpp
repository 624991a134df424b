// The JSON forms of a plan and an inspection: what `qforge plan --json` and
// `qforge inspect --json` print, and what scripts consume. Field names are stable.
#include "pipeline/pipeline_internal.hpp"

namespace qforge {
namespace {

nlohmann::json tensors_json(const std::vector<OutputTensor>& tensors) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : tensors) {
    out.push_back({{"name", t.name},
                   {"dtype", dtype_to_string(t.dtype)},
                   {"shape", t.shape},
                   {"bytes", pipeline::tensor_bytes(t)}});
  }
  return out;
}

nlohmann::json selection_json(const Selection& selection) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& c : selection.candidates) {
    candidates.push_back({{"plugin", c.plugin_id},
                          {"priority", c.priority},
                          {"rejected_because", c.rejected_because}});
  }
  return {{"plugin", selection.plugin_id}, {"candidates", candidates}};
}

}  // namespace

nlohmann::json plan_to_json(const Plan& plan) {
  nlohmann::json j;
  j["nothing_to_do"] = plan.nothing_to_do;
  if (plan.nothing_to_do) j["note"] = plan.note;
  j["quant_method"] = plan.config.quant_method;
  j["pre_quantized"] = plan.config.pre_quantized;
  j["config"] = plan.config.config;
  j["warnings"] = plan.warnings;
  if (plan.nothing_to_do) return j;
  j["selection"] = selection_json(plan.selection);
  j["family"] = plan.family;
  j["dtype"] = plan.dtype;
  j["device_map"] = plan.device_map;
  nlohmann::json modules = nlohmann::json::array();
  for (const auto& pm : plan.modules) {
    nlohmann::json m = {{"name", pm.module.name},
                        {"role", module_role_name(pm.module.role)},
                        {"shape", pm.module.weight_shape},
                        {"dtype", dtype_to_string(pm.module.weight_dtype)},
                        {"action", module_action_name(pm.action)},
                        {"reason", pm.reason},
                        {"bytes_before", pm.bytes_before},
                        {"bytes_after", pm.bytes_after},
                        {"outputs", tensors_json(pm.outputs)}};
    modules.push_back(std::move(m));
  }
  j["modules"] = std::move(modules);
  j["loose_tensors"] = plan.loose_tensors;
  j["totals"] = {
      {"modules_quantized", plan.quantized}, {"modules_kept", plan.kept},
      {"tensors_out", plan.layout.size()},   {"bytes_before", plan.bytes_before},
      {"bytes_after", plan.bytes_after},     {"footprint_ratio", plan.footprint_ratio()}};
  j["quantization_config"] = plan.quantization_config;
  return j;
}

nlohmann::json inspection_to_json(const Inspection& inspection) {
  nlohmann::json j;
  j["family"] = inspection.family;
  if (inspection.config) {
    j["quant_method"] = inspection.config->quant_method;
    j["quantization_config"] = inspection.config->config;
  } else {
    j["quant_method"] = nullptr;
  }
  j["checked_by"] = inspection.plugin_id;
  nlohmann::json modules = nlohmann::json::array();
  for (const auto& im : inspection.modules) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : im.tensors) {
      tensors.push_back(
          {{"name", t.name}, {"dtype", t.dtype_name}, {"shape", t.shape}, {"bytes", t.nbytes}});
    }
    modules.push_back({{"name", im.module.name},
                       {"role", module_role_name(im.module.role)},
                       {"status", im.status},
                       {"bytes", im.bytes},
                       {"tensors", std::move(tensors)}});
  }
  j["modules"] = std::move(modules);
  j["loose_tensors"] = inspection.loose_tensors;
  j["totals"] = {{"modules_quantized", inspection.quantized},
                 {"modules_dense", inspection.dense},
                 {"problems", inspection.problems},
                 {"bytes", inspection.total_bytes}};
  j["warnings"] = inspection.warnings;
  return j;
}

}  // namespace qforge
