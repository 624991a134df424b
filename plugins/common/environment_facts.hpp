// What validate_environment(env_json, request_json) receives, read into plain structs: the
// host's environment probe (docs/environment.md) and the request (device, device_map,
// pre_quantized, allow_emulation, ...). Shared by the in-tree plugins so every one reads the two
// documents, and names a malformed member, the same way.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qforge::plugins {

// One GPU from the host's environment probe (env["devices"]).
struct GpuFacts {
  std::string backend;  // "cuda" or "rocm"
  int index = 0;
  std::string name;
  int cc_major = -1;  // CUDA compute capability; -1 when the probe did not report it
  int cc_minor = -1;

  // "NVIDIA H100 (cuda:0)"-style label for messages.
  std::string label() const;
  // "8.9"; "unknown" when the probe did not report it.
  std::string cc_text() const;
  // True when the compute capability is known and >= major.minor.
  bool cc_at_least(int major, int minor) const;
};

struct EnvironmentFacts {
  std::vector<GpuFacts> gpus;
  std::string cuda_status;  // the probe's reason for having no CUDA devices, if any
  std::string hip_status;

  const GpuFacts* find(const std::string& backend, int index) const;
  const GpuFacts* first(const std::string& backend) const;
  // "cuda:0 (NVIDIA H100), cuda:1 (...)"; "" when there is none of that backend.
  std::string list(const std::string& backend) const;
};

// A device named by a request or a device_map value. kind: "cpu", "disk", "cuda", "rocm", or
// "gpu" (a bare integer: an accelerator index, resolved against the machine by resolve()).
struct DeviceRef {
  std::string kind;
  int index = 0;
  std::string text() const;  // "cuda:1", "cpu"
  bool is_gpu() const { return kind == "cuda" || kind == "rocm"; }
};

// request_json of validate_environment; every member optional.
struct RequestFacts {
  bool pre_quantized = false;
  std::optional<DeviceRef> device;
  nlohmann::json device_map;  // null, an object, a string ("auto", "cuda:1") or an integer
  bool from_tf = false;
  bool from_flax = false;
  // The user accepts a slower emulated path where the method's hardware is missing
  // (`--allow-emulation`). Plugins without emulation ignore it.
  bool allow_emulation = false;
};

// Parsers throw sdk::Error(INVALID_ARGUMENT) naming the member that is malformed. An empty text
// counts as {} (the SDK passes "" for a NULL pointer).
EnvironmentFacts parse_environment(const std::string& env_json);
RequestFacts parse_request(const std::string& request_json);

// "cpu", "disk", "cuda", "cuda:N", "rocm", "rocm:N" or an integer N (an accelerator index, as
// in a transformers device_map); nullopt for anything else ("auto", "meta", ...).
std::optional<DeviceRef> parse_device(const nlohmann::json& value);

// An accelerator index means the CUDA device when there are any, else the ROCm one, as torch's
// "cuda" does on ROCm. Other devices are returned unchanged.
DeviceRef resolve_device(const DeviceRef& device, const EnvironmentFacts& env);

// The GPU `device` names, or FAILED_PRECONDITION when this machine has no such device (what
// it has instead and the probe's reason in `why`). `role` says who asked ("the request asks
// for"); `fix` is the method's advice, to which the GPUs that exist are appended. CPU and disk
// return nullptr.
const GpuFacts* require_gpu(const DeviceRef& device, const EnvironmentFacts& env,
                            const std::string& role, const std::string& summary,
                            const std::string& fix);

// The device a null device_map defaults to: the requested device, else the first CUDA device,
// else the first ROCm device, else the CPU (transformers: torch.cuda.current_device(), then the
// other accelerators, then {"": "cpu"}).
std::string default_device(const EnvironmentFacts& env, const RequestFacts& request);

// device_map strategies the host's planner resolves ("auto", "balanced", ...).
bool is_device_map_strategy(const nlohmann::json& value);

}  // namespace qforge::plugins
