// validate_environment for the bitsandbytes methods: the transformers v5 rules of
// Bnb4BitHfQuantizer / Bnb8BitHfQuantizer (FORMATS.md §2.2, §2.3) translated from "is this
// Python package and torch device available" to "does the host's environment probe list it".
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bnb_config.hpp"

namespace qforge::plugins::bnb {

// One GPU from the host's environment probe (docs/environment.md: env["devices"]).
struct GpuFacts {
  std::string backend;  // "cuda" or "rocm"
  int index = 0;
  std::string name;
  int cc_major = -1;  // CUDA compute capability; -1 when the probe did not report it
  int cc_minor = -1;
};

struct EnvironmentFacts {
  std::vector<GpuFacts> gpus;
  std::string cuda_status;  // the probe's reason for having no CUDA devices, if any
  std::string hip_status;

  const GpuFacts* find(const std::string& backend, int index) const;
  const GpuFacts* first(const std::string& backend) const;
};

// A device named by a request or a device_map value. kind: "cpu", "disk", "cuda" or "rocm".
struct DeviceRef {
  std::string kind;
  int index = 0;
  std::string text() const;  // "cuda:1", "cpu"
};

// request_json of validate_environment: {"pre_quantized", "dtype", "device", "device_map",
// "from_tf", "from_flax"}; every member optional.
struct RequestFacts {
  bool pre_quantized = false;
  std::optional<DeviceRef> device;
  nlohmann::json device_map;  // null, an object or a string ("auto", "balanced", ...)
  bool from_tf = false;
  bool from_flax = false;
};

// Parsers throw sdk::Error(INVALID_ARGUMENT) naming the member that is malformed. An empty text
// counts as {} (the SDK passes "" for a NULL pointer).
EnvironmentFacts parse_environment(const std::string& env_json);
RequestFacts parse_request(const std::string& request_json);

// "cpu", "disk", "cuda", "cuda:N", "rocm:N" or an integer N (an accelerator index, as in a
// transformers device_map); nullopt for anything else ("auto", "meta", ...).
std::optional<DeviceRef> parse_device(const nlohmann::json& value);

// Applies the rules; throws sdk::Error with FAILED_PRECONDITION (this machine cannot serve it)
// or INVALID_ARGUMENT (the request itself is wrong).
void check_environment(const BnbConfig& config, BnbBits bits, const EnvironmentFacts& env,
                       const RequestFacts& request);

// The device a null device_map defaults to: the requested device, else the first CUDA device,
// else the first ROCm device, else the CPU (transformers: torch.cuda.current_device(), then
// the other accelerators, then {"": "cpu"}).
std::string default_device(const EnvironmentFacts& env, const RequestFacts& request);

}  // namespace qforge::plugins::bnb
