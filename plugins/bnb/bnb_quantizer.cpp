// The bitsandbytes quantizers' configuration hooks (see bnb_quantizer.hpp).
#include "bnb_quantizer.hpp"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "bnb_compute.hpp"
#include "bnb_device.hpp"
#include "bnb_layout.hpp"
#include "cpu/int8.hpp"
#include "cpu/kernels.hpp"

namespace qforge::plugins::bnb {
namespace {

using sdk::Error;

// Parses a hook's JSON argument; "" (a NULL pointer through the SDK) reads as null.
nlohmann::json parse_argument(const std::string& text, const std::string& hook) {
  if (text.empty()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, hook + ": argument is not JSON",
                "got " + text.substr(0, 80), "pass JSON text (the host always does)");
  }
  return j;
}

// floor(a / b) for b > 0, also for negative a.
int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

}  // namespace

std::optional<std::string> find_skip_match(const std::string& name,
                                           const std::vector<std::string>& skip) {
  const size_t dot = name.rfind('.');
  const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
  for (const auto& key : skip) {
    if (key.empty())
      continue;  // "" + "." would match every dotted name; transformers never
                 // meant an empty entry to skip the whole model
    if (last == key || key == name || name.find(key + ".") != std::string::npos) return key;
  }
  return std::nullopt;
}

int64_t scale_budget(int64_t bytes) {
  // 0.9 * v = 9 * (v / 10) + 9 * (v % 10) / 10, exact in integers and free of overflow.
  return 9 * floor_div(bytes, 10) + floor_div(9 * (bytes - 10 * floor_div(bytes, 10)), 10);
}

BnbQuantizer::BnbQuantizer(const std::string& config_json, BnbBits bits)
    : bits_(bits), config_(parse_bnb_config(config_json, bits)) {}

void BnbQuantizer::validate_environment(const std::string& env_json,
                                        const std::string& request_json) {
  const EnvironmentFacts env = parse_environment(env_json);
  const RequestFacts request = parse_request(request_json);
  check_environment(config_, bits_, env, request);
  default_device_ = default_device(env, request);
}

std::string BnbQuantizer::update_dtype(const std::string& dtype) {
  if (!dtype.empty()) return dtype;
  if (sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO,
             "Overriding dtype=None with `dtype=torch.float16` due to requirements of "
             "`bitsandbytes` to enable model loading in 8-bit or 4-bit. Pass your own dtype to "
             "specify the dtype of the remaining non-linear layers or pass dtype=torch.float16 "
             "to remove this warning.");
  }
  return "float16";
}

std::string BnbQuantizer::update_device_map(const std::string& device_map_json) {
  const nlohmann::json map = parse_argument(device_map_json, "update_device_map");
  if (!map.is_null()) return device_map_json;
  const std::string device = default_device_.value_or("cpu");
  if (sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO, "The device_map was not initialized. Setting device_map to {'': '" +
                              device +
                              "'}. If you want to use the model for inference, please "
                              "set device_map ='auto' ");
  }
  return nlohmann::json{{"", device}}.dump();
}

std::string BnbQuantizer::adjust_max_memory(const std::string& max_memory_json) {
  nlohmann::json budget = parse_argument(max_memory_json, "adjust_max_memory");
  if (budget.is_null()) return max_memory_json.empty() ? "null" : max_memory_json;
  if (!budget.is_object()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "adjust_max_memory: max_memory is not a JSON object",
                "got " + budget.dump().substr(0, 80),
                "pass {\"cpu\": bytes, \"cuda:0\": bytes, ...}");
  }
  for (auto& [device, value] : budget.items()) {
    if (value.is_number_unsigned()) {
      const uint64_t v = value.get<uint64_t>();
      value = 9 * (v / 10) + 9 * (v % 10) / 10;
    } else if (value.is_number_integer()) {
      value = scale_budget(value.get<int64_t>());
    } else if (value.is_number_float()) {
      value = value.get<double>() * kMaxMemoryFactor;
    } else {
      throw Error(QF_CODE_INVALID_ARGUMENT,
                  "adjust_max_memory: budget for '" + device + "' is not a number",
                  "got " + value.dump().substr(0, 40) + "; budgets are byte counts",
                  "convert sizes such as \"10GiB\" to bytes before calling");
    }
  }
  return budget.dump();
}

bool BnbQuantizer::needs_quantization(const qf_module_info& module, std::string& reason) {
  if (module.kind != QF_MODULE_LINEAR && module.kind != QF_MODULE_CONV1D) {
    reason = "not a linear layer";
    return false;
  }
  if (config_.llm_int8_skip_modules) {
    const std::string name = module.name != nullptr ? module.name : "";
    if (auto key = find_skip_match(name, *config_.llm_int8_skip_modules)) {
      reason = "listed in llm_int8_skip_modules ('" + *key + "')";
      return false;
    }
    return true;
  }
  // transformers adds its default skips (output head, tied weights) only when
  // llm_int8_skip_modules is None (FORMATS.md §1.4); the host's architecture map says which
  // modules those are.
  if (module.extra_json != nullptr) {
    const nlohmann::json extra = nlohmann::json::parse(module.extra_json, nullptr, false);
    if (extra.is_object() && extra.contains("default_skip") && extra["default_skip"].is_string() &&
        !extra["default_skip"].get<std::string>().empty()) {
      reason = "transformers' default skip list: " + extra["default_skip"].get<std::string>();
      return false;
    }
  }
  return true;
}

std::string BnbQuantizer::describe_quantized(const qf_module_info& module) {
  nlohmann::json described = nlohmann::json::parse(
      describe_json(bits_ == BnbBits::k4 ? describe_4bit(config_, module) : describe_8bit(module)));
  // Informational, beside "tensors" (which the host reads): the CPU kernel family this machine
  // would run for the module, so `qforge doctor` can show it without a new ABI entry. 4-bit
  // modules whose in_features is not a multiple of 64 run the scalar path whatever is named.
  described["kernels"] = {{"cpu", bits_ == BnbBits::k4
                                      ? cpu::isa_name(cpu::select_isa())
                                      : cpu::int8_isa_name(cpu::select_int8_isa())}};
  // GPU: which kernels this build holds (docs/gpu.md); "none" = CPU-only build.
  const std::string backend = gpu_backend();
  described["kernels"][backend == "HIP" ? "rocm" : "cuda"] =
      backend == "none" ? "none (built without nvcc/hipcc)" : "bnb " + backend + " kernels";
  return described.dump();
}

void BnbQuantizer::check_quantized(const qf_module_info& module, const qf_tensor_list& tensors) {
  if (bits_ == BnbBits::k4) {
    check_4bit(config_, module, tensors);
  } else {
    check_8bit(module, tensors);
  }
}

void BnbQuantizer::quantize(const sdk::Call& call, const qf_module_info& module,
                            const DLTensor& weight, const DLTensor* /*bias*/,
                            const qf_tensor_list* /*calibration*/, sdk::TensorSink& out) {
  // The bias is stored unchanged; the host copies it, so quantize writes only the weight's set.
  if (bits_ == BnbBits::k8 && config_.llm_int8_has_fp16_weight) {
    // bitsandbytes then keeps float16 weights (its training mode) and save_pretrained writes
    // them without SCB: there is no int8 checkpoint to write.
    throw Error(
        QF_CODE_INVALID_ARGUMENT,
        "module '" + std::string(module.name != nullptr ? module.name : "") +
            "': llm_int8_has_fp16_weight is true",
        "with it bitsandbytes keeps the weights in float16 (training mode) and writes no "
        "int8 weights or SCB, so there is nothing to quantize",
        "set llm_int8_has_fp16_weight: false (the default) to write an LLM.int8 checkpoint");
  }
  if (is_device_call(call)) return device_quantize(call, config_, bits_, module, weight, out);
  if (bits_ == BnbBits::k8) {
    quantize_8bit(call, module, weight, out);
    return;
  }
  quantize_4bit(call, config_, module, weight, out);
}

void BnbQuantizer::dequantize(const sdk::Call& call, const qf_module_info& module,
                              const qf_tensor_list& tensors, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_dequantize(call, config_, bits_, module, tensors, out);
  if (bits_ == BnbBits::k8) {
    dequantize_8bit(call, module, tensors, out);
    return;
  }
  dequantize_4bit(call, config_, module, tensors, out);
}

void BnbQuantizer::linear_forward(const sdk::Call& call, const qf_module_info& module,
                                  const qf_tensor_list& tensors, const DLTensor& x,
                                  const DLTensor* bias, DLTensor& y) {
  if (is_device_call(call)) {
    return device_linear_forward(call, config_, bits_, module, tensors, x, bias, y);
  }
  if (bits_ == BnbBits::k8) {
    linear_forward_8bit(call, config_, module, tensors, x, bias, y);
    return;
  }
  linear_forward_4bit(call, config_, module, tensors, x, bias, y);
}

std::string BnbQuantizer::postprocess(const std::string& /*model_config_json*/) {
  return to_quantization_config(config_).dump();
}

}  // namespace qforge::plugins::bnb
