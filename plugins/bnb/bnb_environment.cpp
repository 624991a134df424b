// validate_environment rules for bitsandbytes (see bnb_environment.hpp).
#include "bnb_environment.hpp"

#include <algorithm>
#include <cctype>
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

nlohmann::json parse_object(const std::string& text, const char* what) {
  if (text.empty()) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, std::string(what) + " is not a JSON object",
                "got " + text.substr(0, 80), "pass a JSON object");
  }
  return j;
}

Error bad_member(const char* what, const std::string& member, const std::string& expected,
                 const nlohmann::json& got) {
  return Error(QF_CODE_INVALID_ARGUMENT, std::string(what) + ": '" + member + "' is malformed",
               "expected " + expected + ", got " + got.dump().substr(0, 80),
               "fix the " + std::string(what) + " (docs/environment.md describes the schema)");
}

// "8.9" -> (8, 9); false for anything else.
bool parse_cc(const std::string& text, int* major, int* minor) {
  const size_t dot = text.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == text.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i != dot && std::isdigit(static_cast<unsigned char>(text[i])) == 0) return false;
  }
  if (dot > 3 || text.size() - dot - 1 > 3) return false;
  *major = std::stoi(text.substr(0, dot));
  *minor = std::stoi(text.substr(dot + 1));
  return true;
}

GpuFacts parse_gpu(const nlohmann::json& d, size_t i) {
  const std::string at = "devices[" + std::to_string(i) + "]";
  const char* what = "environment JSON";
  if (!d.is_object()) throw bad_member(what, at, "an object", d);
  GpuFacts gpu;
  auto backend = d.find("backend");
  if (backend == d.end() || !backend->is_string()) {
    throw bad_member(what, at + ".backend", "\"cuda\" or \"rocm\"", d);
  }
  gpu.backend = backend->get<std::string>();
  auto index = d.find("index");
  if (index == d.end() || !index->is_number_integer() || index->get<int64_t>() < 0) {
    throw bad_member(what, at + ".index", "a non-negative integer", d);
  }
  gpu.index = index->get<int>();
  if (auto name = d.find("name"); name != d.end() && name->is_string()) {
    gpu.name = name->get<std::string>();
  }
  if (auto cc = d.find("compute_capability"); cc != d.end() && !cc->is_null()) {
    if (!cc->is_string() || !parse_cc(cc->get<std::string>(), &gpu.cc_major, &gpu.cc_minor)) {
      throw bad_member(what, at + ".compute_capability", "a \"major.minor\" string like \"8.9\"",
                       *cc);
    }
  } else if (auto major = d.find("cc_major"); major != d.end() && major->is_number_integer()) {
    gpu.cc_major = major->get<int>();
    auto minor = d.find("cc_minor");
    gpu.cc_minor = minor != d.end() && minor->is_number_integer() ? minor->get<int>() : 0;
  }
  return gpu;
}

// Resolves an accelerator index (an integer device_map value) against this machine: it means
// the CUDA device when there are any, else the ROCm one, as torch's "cuda" does on ROCm.
DeviceRef resolve(const DeviceRef& device, const EnvironmentFacts& env) {
  if (device.kind != "gpu") return device;
  DeviceRef out = device;
  out.kind = env.first("cuda") == nullptr && env.first("rocm") != nullptr ? "rocm" : "cuda";
  return out;
}

std::string list_gpus(const EnvironmentFacts& env, const std::string& backend) {
  std::string text;
  for (const auto& gpu : env.gpus) {
    if (gpu.backend != backend) continue;
    if (!text.empty()) text += ", ";
    text += backend + ":" + std::to_string(gpu.index);
    if (!gpu.name.empty()) text += " (" + gpu.name + ")";
  }
  return text;
}

// transformers: RuntimeError("No GPU found. A GPU is needed for quantization.").
void require_gpu(const DeviceRef& device, const EnvironmentFacts& env, const std::string& role) {
  if (device.kind != "cuda" && device.kind != "rocm") return;
  if (env.find(device.kind, device.index) != nullptr) return;
  const std::string found = list_gpus(env, device.kind);
  std::string why = role + " " + device.text() + ", but ";
  if (found.empty()) {
    const std::string& status = device.kind == "cuda" ? env.cuda_status : env.hip_status;
    why += "this machine has no " + std::string(device.kind == "cuda" ? "CUDA" : "ROCm") +
           " device" + (status.empty() ? "" : " (" + status + ")");
  } else {
    why += "this machine has only " + found;
  }
  throw Error(QF_CODE_FAILED_PRECONDITION,
              "No GPU found. A GPU is needed for quantization on " + device.text() + ".", why,
              "run with --device cpu (bitsandbytes has CPU kernels)" +
                  (found.empty() ? std::string() : ", or use one of " + found) +
                  "; `qforge doctor` shows the devices qforge can see");
}

// LLM.int8 needs compute capability >= 7.5 on CUDA.
void require_int8_cc(const DeviceRef& device, const EnvironmentFacts& env, BnbBits bits) {
  if (bits != BnbBits::k8 || device.kind != "cuda") return;
  const GpuFacts* gpu = env.find("cuda", device.index);
  if (gpu == nullptr) return;  // require_gpu reported it
  if (gpu->cc_major <= 0) {    // the probe writes "0.0" when it could not read it
    sdk::log(QF_LOG_WARN, "cannot check the compute capability of " + device.text() +
                              ": the environment does not report it; LLM.int8 needs >= 7.5");
    return;
  }
  const bool ok = gpu->cc_major > kInt8MinCcMajor ||
                  (gpu->cc_major == kInt8MinCcMajor && gpu->cc_minor >= kInt8MinCcMinor);
  if (ok) return;
  const std::string cc = std::to_string(gpu->cc_major) + "." + std::to_string(gpu->cc_minor);
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
    const DeviceRef resolved = resolve(*device, env);
    values.insert(resolved.kind == "cpu" || resolved.kind == "disk" ? resolved.kind
                                                                    : resolved.text());
    if (resolved.kind == "cuda" || resolved.kind == "rocm") {
      require_gpu(resolved, env, "device_map puts " + shown_key(key) + " on");
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

const GpuFacts* EnvironmentFacts::find(const std::string& backend, int index) const {
  for (const auto& gpu : gpus) {
    if (gpu.backend == backend && gpu.index == index) return &gpu;
  }
  return nullptr;
}

const GpuFacts* EnvironmentFacts::first(const std::string& backend) const {
  const GpuFacts* best = nullptr;
  for (const auto& gpu : gpus) {
    if (gpu.backend == backend && (best == nullptr || gpu.index < best->index)) best = &gpu;
  }
  return best;
}

std::string DeviceRef::text() const {
  if (kind == "cpu" || kind == "disk") return kind;
  if (kind == "gpu") return std::to_string(index);
  return kind + ":" + std::to_string(index);
}

std::optional<DeviceRef> parse_device(const nlohmann::json& value) {
  if (value.is_number_integer()) {
    if (value.get<int64_t>() < 0 || value.get<int64_t>() > 1 << 20) return std::nullopt;
    return DeviceRef{"gpu", value.get<int>()};
  }
  if (!value.is_string()) return std::nullopt;
  const std::string text = value.get<std::string>();
  if (text == "cpu" || text == "disk") return DeviceRef{text, 0};
  for (const char* kind : {"cuda", "rocm"}) {
    const std::string k = kind;
    if (text == k) return DeviceRef{k, 0};
    if (text.size() > k.size() + 1 && text.compare(0, k.size() + 1, k + ":") == 0) {
      const std::string digits = text.substr(k.size() + 1);
      if (digits.size() > 6 || !std::all_of(digits.begin(), digits.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c)) != 0;
          })) {
        return std::nullopt;
      }
      return DeviceRef{k, std::stoi(digits)};
    }
  }
  return std::nullopt;
}

EnvironmentFacts parse_environment(const std::string& env_json) {
  const nlohmann::json env = parse_object(env_json, "environment JSON");
  EnvironmentFacts facts;
  if (auto devices = env.find("devices"); devices != env.end() && !devices->is_null()) {
    if (!devices->is_array()) throw bad_member("environment JSON", "devices", "a list", *devices);
    for (size_t i = 0; i < devices->size(); ++i) facts.gpus.push_back(parse_gpu((*devices)[i], i));
  }
  // {"cuda": {"status": "libcuda.so.1 not found: ..."}, "rocm": {"status": ...}}
  auto status_of = [&env](const char* backend) {
    auto section = env.find(backend);
    if (section == env.end() || !section->is_object()) return std::string();
    auto status = section->find("status");
    return status != section->end() && status->is_string() ? status->get<std::string>()
                                                           : std::string();
  };
  facts.cuda_status = status_of("cuda");
  facts.hip_status = status_of("rocm");
  return facts;
}

RequestFacts parse_request(const std::string& request_json) {
  const nlohmann::json request = parse_object(request_json, "request JSON");
  const char* what = "request JSON";
  RequestFacts facts;
  auto read_flag = [&](const char* key, bool* out) {
    auto it = request.find(key);
    if (it == request.end() || it->is_null()) return;
    if (!it->is_boolean()) throw bad_member(what, key, "true or false", *it);
    *out = it->get<bool>();
  };
  read_flag("pre_quantized", &facts.pre_quantized);
  read_flag("from_tf", &facts.from_tf);
  read_flag("from_flax", &facts.from_flax);
  if (auto it = request.find("device"); it != request.end() && !it->is_null()) {
    auto device = it->is_string() ? parse_device(*it) : std::nullopt;
    if (!device || device->kind == "disk") {
      throw Error(QF_CODE_INVALID_ARGUMENT, "request: device " + it->dump() + " is not a device",
                  "expected \"cpu\", \"cuda\", \"cuda:N\" or \"rocm:N\"",
                  "pass --device cpu, --device cuda or --device cuda:N");
    }
    facts.device = device;
  }
  if (auto it = request.find("device_map"); it != request.end()) {
    if (!it->is_null() && !it->is_object() && !it->is_string() && !it->is_number_integer()) {
      throw bad_member(what, "device_map", "an object, a string or null", *it);
    }
    facts.device_map = *it;
  }
  return facts;
}

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
    const DeviceRef device = resolve(*request.device, env);
    require_gpu(device, env, "the request asks for");
    gpus_used.push_back(device);
  }

  const nlohmann::json& map = request.device_map;
  if (map.is_object()) {
    check_device_map(map, config, env, &gpus_used);
  } else if (map.is_string() || map.is_number_integer()) {
    // A bare device ("cuda:1") means {"": device}; the planner strategies need no check here.
    static const std::set<std::string> kStrategies = {"auto", "balanced", "balanced_low_0",
                                                      "sequential"};
    if (map.is_string() && kStrategies.count(map.get<std::string>()) != 0) {
      // resolved later by the host's planner
    } else if (auto device = parse_device(map); device && device->kind != "disk") {
      const DeviceRef resolved = resolve(*device, env);
      require_gpu(resolved, env, "device_map puts the whole model on");
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

std::string default_device(const EnvironmentFacts& env, const RequestFacts& request) {
  if (request.device) {
    const DeviceRef d = resolve(*request.device, env);
    return d.text();
  }
  if (const GpuFacts* gpu = env.first("cuda")) return "cuda:" + std::to_string(gpu->index);
  if (const GpuFacts* gpu = env.first("rocm")) return "rocm:" + std::to_string(gpu->index);
  return "cpu";
}

}  // namespace qforge::plugins::bnb
