// The machine qforge runs on, probed once and handed to plugins as JSON
// (validate_environment's env_json). No GPU is a fact in the report, never an error.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace qforge {

struct GpuDevice {
  std::string backend;  // "cuda" or "rocm"
  int index = 0;
  std::string name;
  int cc_major = 0;  // CUDA compute capability (0 for ROCm)
  int cc_minor = 0;
  std::string gcn_arch;       // ROCm gfx arch, e.g. "gfx90a" ("" for CUDA)
  uint64_t total_memory = 0;  // bytes
  uint64_t free_memory = 0;   // bytes; 0 when unknown
};

struct Environment {
  std::string cpu_arch;   // "x86_64", "aarch64"
  std::string cpu_model;  // /proc/cpuinfo "model name"
  int logical_cpus = 0;
  std::vector<std::string>
      cpu_features;          // sorted: "avx2", "avx512f", "avx512_vnni", "amx_int8", ...
  uint64_t host_memory = 0;  // bytes
  // CUDA: driver library found and initialised? Version as the driver reports it (e.g. 12040).
  bool cuda_driver_found = false;
  int cuda_driver_version = 0;
  std::string cuda_status;  // why there are no CUDA devices, e.g. "libcuda.so.1 not found"
  bool hip_runtime_found = false;
  int hip_runtime_version = 0;
  std::string hip_status;
  std::vector<GpuDevice> devices;
  // Whether this build's tensors (LibTorch) can live on each backend: {"cpu": true, "cuda": false}
  bool torch_cuda = false;
  std::string host_version;

  bool has_cpu_feature(const std::string& feature) const;
  bool has_cuda() const;  // at least one CUDA device
  bool has_rocm() const;
  nlohmann::json to_json() const;
};

// Probes the CPU (cpuid / /proc/cpuinfo), CUDA devices through the driver API (libcuda loaded at
// run time; no link dependency) and HIP devices through libamdhip64 likewise. Never throws.
Environment probe_environment();

// An environment read back from JSON (tests and `--env FILE` simulate other machines).
Environment environment_from_json(const nlohmann::json& j);

}  // namespace qforge
