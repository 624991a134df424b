// JSON and text renderings of plugin records shared by `doctor` and `plugins`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "qforge/host.hpp"

namespace qforge::cli {

// {"type":"cuda","min_compute_capability":"7.5"}, {"type":"rocm","gcn_archs":[...]}, ...
nlohmann::json device_requirement_json(const DeviceRequirement& device);
// "cpu", "cuda>=7.5", "rocm(gfx90a,gfx942)", "cpu(avx2)"
std::string device_requirement_text(const DeviceRequirement& device);

// {"quant_method","aliases","presets","devices","priority","requires_calibration",
//  "loading_attributes"}
nlohmann::json method_json(const MethodManifest& method);

// {"id","name","version","vendor","manifest","library","requires","state","reason",
//  "shadowed_by","runtime_version","abi","methods":[method_json...]}
nlohmann::json plugin_record_json(const PluginRecord& record);

// The failure as one line ("" when none): what: why (fix: ...).
std::string record_reason(const PluginRecord& record);

}  // namespace qforge::cli
