// The FP8 methods' environment rules (see fp8_environment.hpp).
#include "fp8_environment.hpp"

#include <qforge/qf_plugin.hpp>
#include <vector>

#include "cpu/kernels.hpp"

namespace qforge::plugins::fp8 {
namespace {

using sdk::Error;

std::string min_cc_text(const Fp8Rules& rules) {
  return std::to_string(rules.min_cc_major) + "." + std::to_string(rules.min_cc_minor);
}

// The devices the weights would go to: the request's device, the device_map's values, or the
// default device (the first GPU, else the CPU).
std::vector<DeviceRef> target_devices(const Fp8Rules& rules, const EnvironmentFacts& env,
                                      const RequestFacts& request) {
  std::vector<DeviceRef> devices;
  if (request.device) devices.push_back(resolve_device(*request.device, env));
  const nlohmann::json& map = request.device_map;
  if (map.is_object()) {
    bool offloaded = false;
    bool on_gpu = false;
    for (const auto& [key, value] : map.items()) {
      auto device = parse_device(value);
      if (!device) {
        throw Error(QF_CODE_INVALID_ARGUMENT, "device_map value for '" + key + "' is not a device",
                    "got " + value.dump().substr(0, 60) +
                        "; expected \"cpu\", \"disk\", \"cuda:N\", \"rocm:N\" or an integer index",
                    "fix the device_map");
      }
      const DeviceRef resolved = resolve_device(*device, env);
      (resolved.is_gpu() ? on_gpu : offloaded) = true;
      if (resolved.kind != "disk") devices.push_back(resolved);
    }
    // transformers refuses cpu/disk entries when quantizing on the fly. An all-CPU map is the
    // CPU device here (the emulation rule below decides), so only mixed maps are refused.
    if (!request.pre_quantized && offloaded && on_gpu) {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "You are attempting to load an FP8 model with a device_map that contains a "
                  "cpu/disk device. This is not supported when the model is quantized on the fly.",
                  rules.method +
                      " quantizes the weights where they are placed, and this "
                      "device_map mixes a GPU with cpu/disk",
                  "Please use a quantized checkpoint or remove the cpu/disk device from the "
                  "device_map (or quantize on one device: --device cpu --allow-emulation)");
    }
  } else if (!map.is_null() && !is_device_map_strategy(map)) {
    auto device = parse_device(map);
    if (!device || device->kind == "disk") {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "device_map " + map.dump() + " is neither a device nor a strategy",
                  "expected 'auto', 'balanced', 'balanced_low_0', 'sequential' or a device such "
                  "as \"cuda:0\"",
                  "fix --device-map");
    }
    devices.push_back(resolve_device(*device, env));
  }
  if (devices.empty()) {
    auto device = parse_device(default_device(env, request));
    devices.push_back(device ? *device : DeviceRef{"cpu", 0});
  }
  return devices;
}

struct Need {
  DeviceRef device;
  std::string why;      // empty: native
  std::string summary;  // transformers' message for this case
};

Need assess(const Fp8Rules& rules, const DeviceRef& device, const EnvironmentFacts& env,
            const RequestFacts& request) {
  Need need{device, "", ""};
  if (!device.is_gpu()) {
    need.why = "the CPU has no FP8 hardware path";
    need.summary = request.pre_quantized
                       ? "Using FP8 quantized models requires a GPU or XPU"
                       : "No GPU or XPU found. A GPU or XPU is needed for FP8 quantization.";
    return need;
  }
  const std::string use_cpu = "use --device cpu --allow-emulation";
  const GpuFacts* gpu =
      require_gpu(device, env, "the request asks for",
                  "No GPU found for " + rules.method + " on " + device.text(), use_cpu);
  if (device.kind == "rocm") {
    throw Error(QF_CODE_FAILED_PRECONDITION,
                rules.method + ": no ROCm kernels for FP8 in qforge (" + gpu->label() + ")",
                "transformers runs FP8 on CUDA and XPU devices only, and qforge's FP8 kernels are "
                "CUDA kernels",
                use_cpu);
  }
  if (!rules.cuda_kernels_built) {
    throw Error(
        QF_CODE_FAILED_PRECONDITION,
        rules.method + ": this build of the fp8 plugin has no CUDA kernels",
        "it was compiled without nvcc, so it cannot compute on " + gpu->label(),
        "rebuild with the CUDA toolkit (nvcc at /usr/local/cuda, -DQFORGE_CUDA=ON), or " + use_cpu);
  }
  if (!gpu->cc_at_least(rules.min_cc_major, rules.min_cc_minor)) {
    need.why = gpu->label() + " has compute capability " + gpu->cc_text() + ", FP8 needs " +
               min_cc_text(rules) + " or newer";
    need.summary = "FP8 quantized models is only supported on GPUs with compute capability >= " +
                   min_cc_text(rules) + " (e.g " + (rules.min_cc_minor == 9 ? "4090/" : "") +
                   "H100), actual = `" + gpu->cc_text() + "`";
  }
  return need;
}

}  // namespace

Fp8Decision check_fp8_environment(const Fp8Rules& rules, const EnvironmentFacts& env,
                                  const RequestFacts& request) {
  const std::vector<DeviceRef> devices = target_devices(rules, env, request);
  Fp8Decision decision;
  decision.device = devices.front().text();
  for (const DeviceRef& device : devices) {
    const Need need = assess(rules, device, env, request);
    if (need.why.empty()) continue;
    if (!request.allow_emulation && !rules.dequantize_requested) {
      throw Error(
          QF_CODE_FAILED_PRECONDITION, need.summary,
          need.why + "; there qforge runs " + rules.method +
              " only by emulation (weights dequantized to float32, activations rounded through "
              "e4m3, fp32 GEMM), which is slower than FP8 hardware and has to be asked for",
          "pass --allow-emulation" +
              std::string(rules.method == "fp8" ? " (or set dequantize: true)" : "") +
              ", or run on a CUDA GPU with compute capability >= " + min_cc_text(rules) +
              " (--device cuda:N)");
    }
    decision.device = device.text();
    decision.emulated = true;
    decision.why = need.why;
    decision.allowed_by = request.allow_emulation ? "--allow-emulation" : "dequantize: true";
    break;
  }
  return decision;
}

std::string describe(const Fp8Decision& decision, const Fp8Rules& rules) {
  if (!decision.emulated) return rules.method + ": native FP8 on " + decision.device;
  return rules.method + ": emulation on " + decision.device + " (allowed by " +
         decision.allowed_by + "; " + decision.why +
         "): weights dequantized to float32, activations rounded through e4m3, fp32 GEMM";
}

nlohmann::json kernels_json(const std::optional<Fp8Decision>& decision, const Fp8Rules& rules) {
  nlohmann::json kernels = {
      {"cpu", "emulation (only with --allow-emulation" +
                  std::string(rules.method == "fp8" ? " or dequantize: true" : "") +
                  "): weights dequantized to float32, activations rounded through e4m3, fp32 "
                  "GEMM; CPU kernel " +
                  std::string(cpu::isa_name(cpu::select_isa()))},  // cpu/kernels.hpp
      {"cuda", rules.cuda_kernels_built
                   ? "native FP8 on compute capability >= " + min_cc_text(rules) +
                         ", emulation below it (only when allowed)"
                   : std::string("none: built without nvcc")}};
  if (decision) kernels["this_run"] = describe(*decision, rules);
  return kernels;
}

}  // namespace qforge::plugins::fp8
