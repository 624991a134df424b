#include "method_options.hpp"

#include <CLI/CLI.hpp>

namespace qforge::cli {

void MethodOptions::add_to(CLI::App& app) {
  app.add_option("MODEL", model,
                 "Model folder (config.json + *.safetensors) or a .safetensors file")
      ->required();
  app.add_option("--method", method,
                 "quant_method, alias or preset (nf4, fp4, int8, bitsandbytes_4bit, ...)");
  app.add_option("--config", config_file, "Quantization config file (YAML or JSON)")
      ->type_name("FILE");
  app.add_option("--set", sets, "Config override key=value (repeatable; value parsed as JSON)")
      ->type_name("KEY=VALUE");
  app.add_option("--device", device, "cpu | cuda[:N] | rocm[:N]")->capture_default_str();
  app.add_option("--plugin", plugin, "Use this plugin id; fail rather than fall back");
  app.add_option("--arch-dir", arch_dirs,
                 "Read architecture maps from this folder instead of the default ones")
      ->type_name("DIR");
  app.add_flag("--allow-emulation", allow_emulation, kAllowEmulationHelp);
}

PlanRequest MethodOptions::to_request() const {
  PlanRequest request;
  if (!method.empty()) request.config.method = method;
  if (!config_file.empty()) request.config.user_config = load_user_config(config_file).value();
  for (const auto& s : sets) request.config.overrides.push_back(parse_set_flag(s).value());
  request.device = device;
  if (!plugin.empty()) request.pinned_plugin = plugin;
  for (const auto& d : arch_dirs) request.architecture_dirs.emplace_back(d);
  request.allow_emulation = allow_emulation;
  return request;
}

}  // namespace qforge::cli
