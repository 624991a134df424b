// The flags plan and quantize share: which method, with what config, on which device, served by
// which plugin, with which architecture maps. Parsed into a PlanRequest.
#pragma once

#include <string>
#include <vector>

#include "qforge/pipeline.hpp"

namespace CLI {
class App;
}  // namespace CLI

namespace qforge::cli {

// --allow-emulation's help, shared by every command that has the flag.
inline constexpr const char* kAllowEmulationHelp =
    "Run methods whose hardware is missing by emulation (FP8 without a GPU of compute capability "
    ">= 8.9: dequantize + fp32 GEMM); reported, never silent";

struct MethodOptions {
  std::string model;                   // MODEL (folder or .safetensors)
  std::string method;                  // --method
  std::string config_file;             // --config FILE
  std::vector<std::string> sets;       // --set key=value
  std::string device = "cpu";          // --device
  std::string plugin;                  // --plugin ID
  std::vector<std::string> arch_dirs;  // --arch-dir DIR
  bool allow_emulation = false;        // --allow-emulation

  void add_to(CLI::App& app);
  // Throws qforge::Error (exit 4 for unreadable config files, 2 for malformed --set).
  PlanRequest to_request() const;
};

}  // namespace qforge::cli
