// validate_environment rules for bitsandbytes (see bnb_environment.hpp).
#include "bnb_environment.hpp"

#include <algorithm>
#include <qforge/qf_plugin.hpp>
#include <set>
#include <utility>

namespace qforge::plugins::bnb {
namespace {

using sdk::Error;

// LLM.int8's int8 matmul kernels need Turing or newer (bitsandbytes issues #529, #118, #97:
// "Your GPU does not support Int8 Matmul!" on P40, V100, M40).
constexpr int kInt8MinCcMajor = 7;
constexpr int kInt8MinCcMinor = 5;

// transformers' text, with the flag name it fixed later (the v4.4x text named a flag that
// does not exist, `load_in_8bit_fp32_cpu_offload`).
constexpr const char* kOffloadMessage =
    "Some modules are dispatched on the CPU or the disk. Make sure you have enough GPU RAM to fit "
    "the quantized model. If you want to dispatch the model on the CPU or the disk while keeping "
    "these modules in 32-bit, you need to set `llm_int8_enable_fp32_cpu_offload=True` and pass a "
    "custom `device_map` to `from_pretrained`. Check "
    "https://huggingface.co/docs/transformers/main/en/main_classes/quantization#offload-between-"
    "cpu-and-gpu for more details. ";

constexpr const char* kFromTfMessage =
    "Converting into 4-bit or 8-bit weights from tf/flax weights is currently not supported, "
    "please make sure the weights are in PyTorch format.";

// transformers: RuntimeError("No GPU found. A GPU is needed for quantization.").
void require_bnb_gpu(const DeviceRef& device, const EnvironmentFacts& env,
                     const std::string& role) {
  require_gpu(device, env, role,
              "No GPU found. A GPU is needed for quantization on " + device.text() + ".",
              "run with --device cpu (bitsandbytes has CPU kernels)");
}

// LLM.int8 needs compute capability >= 7.5 on CUDA.
void require_int8_cc(const DeviceRef& device, const EnvironmentFacts& env, BnbBits bits) {
  if (bits != BnbBits::k8 || device.kind != "cuda") return;
  const GpuFacts* gpu = env.find("cuda", device.index);
  if (gpu == nullptr) return;  // require_gpu reported it
  if (gpu->cc_text() == "unknown") {
    sdk::log(QF_LOG_WARN, "cannot check the compute capability of " + device.text() +
                              ": the environment does not report it; LLM.int8 needs >= 7.5");
    return;
  }
  if (gpu->cc_at_least(kInt8MinCcMajor, kInt8MinCcMinor)) return;
  const std::string cc = gpu->cc_text();
  throw Error(QF_CODE_FAILED_PRECONDITION,
              "LLM.int8: " + device.text() + (gpu->name.empty() ? "" : " (" + gpu->name + ")") +
                  " does not support Int8 Matmul",
              "compute capability " + cc +
                  " found, 7.5 or newer needed by LLM.int8's int8 matmul " +
                  "(bitsandbytes issues #529, #118)",
              "use a GPU with compute capability >= 7.5 (Turing or newer), or --method "
              "bitsandbytes_4bit (4-bit runs on every GPU), or --device cpu");
}

std::string shown_key(const std::string& key) { return key.empty() ? "\"\" (whole model)" : key; }

// The device_map checks: every value is a device, GPUs exist, and no quantized module is
// offloaded to cpu/disk without llm_int8_enable_fp32_cpu_offload.
void check_device_map(const nlohmann::json& map, const BnbConfig& config,
                      const EnvironmentFacts& env, std::vector<DeviceRef>* gpus_used) {
  std::set<std::string> values;
  std::vector<std::string> offloaded;  // keys of quantized modules on cpu/disk
  const std::vector<std::string> skip =
      config.llm_int8_skip_modules.value_or(std::vector<std::string>{});
  for (const auto& [key, value] : map.items()) {
    auto device = parse_device(value);
    if (!device) {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "device_map value for " + shown_key(key) + " is not a device",
                  "got " + value.dump().substr(0, 60) +
                      "; expected \"cpu\", \"disk\", \"cuda:N\", \"rocm:N\" or an integer index",
                  "fix the device_map");
    }
    const DeviceRef resolved = resolve_device(*device, env);
    values.insert(resolved.kind == "cpu" || resolved.kind == "disk" ? resolved.kind
                                                                    : resolved.text());
    if (resolved.kind == "cuda" || resolved.kind == "rocm") {
      require_bnb_gpu(resolved, env, "device_map puts " + shown_key(key) + " on");
      gpus_used->push_back(resolved);
    }
    // transformers exempts keys listed verbatim in llm_int8_skip_modules: those modules stay
    // unquantized, so they may live anywhere.
    const bool exempt = std::find(skip.begin(), skip.end(), key) != skip.end();
    if (!exempt && (resolved.kind == "cpu" || resolved.kind == "disk")) {
      offloaded.push_back(shown_key(key) + " -> " + resolved.kind);
    }
  }
  if (config.llm_int8_enable_fp32_cpu_offload || offloaded.empty()) return;
  if (values == std::set<std::string>{"cpu"}) return;  // all-CPU: bnb has CPU kernels
  std::string list;
  for (size_t i = 0; i < offloaded.size() && i < 5; ++i) list += (i ? ", " : "") + offloaded[i];
  if (offloaded.size() > 5) list += ", ... (" + std::to_string(offloaded.size()) + " in all)";
  throw Error(QF_CODE_INVALID_ARGUMENT, kOffloadMessage,
              "the device_map mixes GPU and cpu/disk placement for quantized modules: " + list,
              "set llm_int8_enable_fp32_cpu_offload: true (offloaded modules stay unquantized in "
              "float32), list them in llm_int8_skip_modules, or put the whole model on one "
              "device (--device-map with a GPU only, or --device cpu)");
}

}  // namespace

void check_environment(const BnbConfig& config, BnbBits bits, const EnvironmentFacts& env,
                       const RequestFacts& request) {
  if (request.from_tf || request.from_flax) {
    throw Error(
        QF_CODE_INVALID_ARGUMENT, kFromTfMessage,
        std::string("the request sets ") + (request.from_tf ? "from_tf" : "from_flax") + ": true",
        "convert the checkpoint to PyTorch safetensors first");
  }

  std::vector<DeviceRef> gpus_used;
  if (request.device) {
    const DeviceRef device = resolve_device(*request.device, env);
    require_bnb_gpu(device, env, "the request asks for");
    gpus_used.push_back(device);
  }

  const nlohmann::json& map = request.device_map;
  if (map.is_object()) {
    check_device_map(map, config, env, &gpus_used);
  } else if (map.is_string() || map.is_number_integer()) {
    // A bare device ("cuda:1") means {"": device}; the planner strategies need no check here.
    if (is_device_map_strategy(map)) {
      // resolved later by the host's planner
    } else if (auto device = parse_device(map); device && device->kind != "disk") {
      const DeviceRef resolved = resolve_device(*device, env);
      require_bnb_gpu(resolved, env, "device_map puts the whole model on");
      gpus_used.push_back(resolved);
    } else {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "device_map " + map.dump() + " is neither a device nor a strategy",
                  "If passing a string for `device_map`, please choose 'auto', 'balanced', "
                  "'balanced_low_0' or 'sequential' (or a device such as \"cuda:0\")",
                  "fix --device-map");
    }
  } else if (!request.device) {
    // No device and no map: the default map decides where the weights go.
    auto device = parse_device(default_device(env, request));
    if (device) gpus_used.push_back(*device);
  }

  for (const auto& device : gpus_used) require_int8_cc(device, env, bits);
}

}  // namespace qforge::plugins::bnb
