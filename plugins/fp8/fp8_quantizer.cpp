// The fp8 quantizer's hooks (see fp8_quantizer.hpp).
#include "fp8_quantizer.hpp"

#include <nlohmann/json.hpp>

#include "fp8_compute.hpp"
#include "fp8_device.hpp"
#include "fp8_environment.hpp"
#include "fp8_layout.hpp"

namespace qforge::plugins::fp8 {

std::optional<std::string> find_skip_match(const std::string& name,
                                           const std::vector<std::string>& skip) {
  const size_t dot = name.rfind('.');
  const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
  for (const auto& key : skip) {
    if (key.empty()) continue;  // would match every dotted name
    const bool suffix = name.size() > key.size() &&
                        name.compare(name.size() - key.size(), key.size(), key) == 0 &&
                        name[name.size() - key.size() - 1] == '.';
    if (last == key || key == name || suffix || name.rfind(key + ".", 0) == 0 ||
        name.find("." + key + ".") != std::string::npos) {
      return key;
    }
  }
  return std::nullopt;
}

Fp8Quantizer::Fp8Quantizer(const std::string& config_json)
    : config_(parse_fp8_config(config_json)) {}

Fp8Rules Fp8Quantizer::rules() const {
  return Fp8Rules{kMethodFp8, 8, 9, config_.dequantize, kCudaKernelsBuilt};
}

void Fp8Quantizer::validate_environment(const std::string& env_json,
                                        const std::string& request_json) {
  decision_ =
      check_fp8_environment(rules(), parse_environment(env_json), parse_request(request_json));
  // Emulation is never silent (issue 6): the log line is what plan and quantize print.
  const int32_t level = decision_->emulated ? QF_LOG_WARN : QF_LOG_INFO;
  if (sdk::log_enabled(level)) sdk::log(level, describe(*decision_, rules()));
}

std::string Fp8Quantizer::update_dtype(const std::string& dtype) {
  // FineGrainedFP8HfQuantizer.update_dtype: None -> float32.
  if (!dtype.empty()) return dtype;
  if (sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO,
             "Setting dtype to torch.float32 as no dtype was specified in from_pretrained");
  }
  return "float32";
}

bool Fp8Quantizer::needs_quantization(const qf_module_info& module, std::string& reason) {
  if (module.kind != QF_MODULE_LINEAR) {
    reason = "not an nn.Linear (FP8Linear replaces nn.Linear only)";
    return false;
  }
  if (config_.modules_to_not_convert) {
    if (auto key = find_skip_match(module_name(module), *config_.modules_to_not_convert)) {
      reason = "listed in modules_to_not_convert ('" + *key + "')";
      return false;
    }
  }
  const std::string skip = sdk::module_extra_string(module, "default_skip");
  if (!skip.empty()) {
    reason = "transformers' default skip list: " + skip;
    return false;
  }
  return true;
}

std::string Fp8Quantizer::describe_quantized(const qf_module_info& module) {
  nlohmann::json described = nlohmann::json::parse(describe_json(config_, module));
  described["kernels"] = kernels_json(decision_, rules());
  return described.dump();
}

void Fp8Quantizer::check_quantized(const qf_module_info& module, const qf_tensor_list& tensors) {
  check_tensors(config_, module, tensors);
}

void Fp8Quantizer::quantize(const sdk::Call& call, const qf_module_info& module,
                            const DLTensor& weight, const DLTensor* /*bias*/,
                            const qf_tensor_list* /*calibration*/, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_quantize_fp8(call, config_, module, weight, out);
  quantize_fp8(call, config_, module, weight, out);
}

void Fp8Quantizer::dequantize(const sdk::Call& call, const qf_module_info& module,
                              const qf_tensor_list& tensors, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_dequantize_fp8(call, config_, module, tensors, out);
  dequantize_fp8(call, config_, module, tensors, out);
}

void Fp8Quantizer::linear_forward(const sdk::Call& call, const qf_module_info& module,
                                  const qf_tensor_list& tensors, const DLTensor& x,
                                  const DLTensor* bias, DLTensor& y) {
  if (is_device_call(call)) {
    return device_linear_forward_fp8(call, config_, module, tensors, x, bias, y);
  }
  linear_forward_fp8(call, config_, module, tensors, x, bias, y);
}

std::string Fp8Quantizer::postprocess(const std::string& /*model_config_json*/) {
  return to_quantization_config(config_).dump();
}

}  // namespace qforge::plugins::fp8
