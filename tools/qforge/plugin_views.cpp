#include "plugin_views.hpp"

#include <qforge/qf_plugin.h>

namespace qforge::cli {

nlohmann::json device_requirement_json(const DeviceRequirement& device) {
  nlohmann::json j = {{"type", device.type}};
  if (device.min_cc_major) {
    j["min_compute_capability"] = std::to_string(*device.min_cc_major) + "." +
                                  std::to_string(device.min_cc_minor.value_or(0));
  }
  if (!device.gcn_archs.empty()) j["gcn_archs"] = device.gcn_archs;
  if (!device.cpu_features.empty()) j["cpu_features"] = device.cpu_features;
  return j;
}

std::string device_requirement_text(const DeviceRequirement& device) {
  std::string s = device.type;
  if (device.min_cc_major) {
    s += ">=" + std::to_string(*device.min_cc_major) + "." +
         std::to_string(device.min_cc_minor.value_or(0));
  }
  const auto& list = !device.gcn_archs.empty() ? device.gcn_archs : device.cpu_features;
  if (!list.empty()) {
    s += "(";
    for (size_t i = 0; i < list.size(); ++i) s += (i > 0 ? "," : "") + list[i];
    s += ")";
  }
  return s;
}

nlohmann::json method_json(const MethodManifest& method) {
  nlohmann::json presets = nlohmann::json::object();
  for (const auto& [name, config] : method.presets) presets[name] = config;
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& d : method.devices) devices.push_back(device_requirement_json(d));
  return {{"quant_method", method.quant_method},
          {"aliases", method.aliases},
          {"presets", presets},
          {"devices", devices},
          {"priority", method.priority},
          {"requires_calibration", method.requires_calibration},
          {"loading_attributes", method.loading_attributes}};
}

std::string record_reason(const PluginRecord& record) {
  if (record.failure) return record.failure->to_string();
  if (record.state == PluginState::kShadowed) {
    return "plugin id '" + record.id() + "' is already provided by " + record.shadowed_by.string() +
           ", which comes first in the search path";
  }
  return "";
}

nlohmann::json plugin_record_json(const PluginRecord& record) {
  nlohmann::json j;
  j["id"] = record.id();
  j["manifest"] = record.manifest_path.string();
  j["state"] = plugin_state_name(record.state);
  const std::string reason = record_reason(record);
  j["reason"] = reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(reason);
  j["shadowed_by"] = record.shadowed_by.empty() ? nlohmann::json(nullptr)
                                                : nlohmann::json(record.shadowed_by.string());
  j["runtime_version"] = record.runtime_version.empty() ? nlohmann::json(nullptr)
                                                        : nlohmann::json(record.runtime_version);
  j["abi"] =
      record.negotiated_abi == 0
          ? nlohmann::json(nullptr)
          : nlohmann::json(std::to_string(QF_ABI_VERSION_MAJOR(record.negotiated_abi)) + "." +
                           std::to_string(QF_ABI_VERSION_MINOR(record.negotiated_abi)));
  nlohmann::json methods = nlohmann::json::array();
  if (record.manifest) {
    const PluginManifest& m = *record.manifest;
    j["version"] = m.version;
    j["vendor"] = m.vendor;
    j["name"] = m.name;
    j["library"] = m.library_path.string();
    j["requires"] = m.requires_libtorch ? nlohmann::json({{"libtorch", *m.requires_libtorch}})
                                        : nlohmann::json::object();
    for (const auto& method : m.methods) methods.push_back(method_json(method));
  } else {
    j["version"] = nullptr;
    j["vendor"] = nullptr;
    j["name"] = nullptr;
    j["library"] = nullptr;
    j["requires"] = nullptr;
  }
  j["methods"] = methods;
  return j;
}

}  // namespace qforge::cli
