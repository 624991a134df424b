// The hqq quantizer's hooks (see hqq_quantizer.hpp).
#include "hqq_quantizer.hpp"

#include "hqq_compute.hpp"
#include "hqq_device.hpp"
#include "hqq_layout.hpp"

namespace qforge::plugins::hqq {

HqqQuantizer::HqqQuantizer(const std::string& config_json)
    : config_(parse_hqq_config(config_json)) {}

std::string HqqQuantizer::update_dtype(const std::string& dtype) {
  // HqqHfQuantizer.update_dtype: None -> float32. The host keeps dense tensors in their stored
  // dtype (dtype "auto"); quantized layers use the weight's dtype as hqq's compute_dtype.
  if (!dtype.empty()) return dtype;
  if (sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO, "Setting dtype to torch.float32 as no dtype was specified");
  }
  return "float32";
}

bool HqqQuantizer::needs_quantization(const qf_module_info& module, std::string& reason) {
  if (module.kind != QF_MODULE_LINEAR) {
    reason = "not an nn.Linear (HQQLinear replaces nn.Linear only)";
    return false;
  }
  if (!params_for(config_, module_name(module), reason)) return false;
  const std::string skip = sdk::module_extra_string(module, "default_skip");
  if (!skip.empty()) {
    reason = "transformers' default skip list: " + skip;
    return false;
  }
  return true;
}

WeightQuantParams HqqQuantizer::params_or_throw(const qf_module_info& module) const {
  std::string reason;
  auto p = params_for(config_, module_name(module), reason);
  if (!p) {
    throw sdk::Error(QF_CODE_INVALID_ARGUMENT,
                     "module '" + module_name(module) + "' is not quantized by this config", reason,
                     "call needs_quantization first");
  }
  return *p;
}

std::string HqqQuantizer::describe_quantized(const qf_module_info& module) {
  return describe_json(params_or_throw(module), module);
}

void HqqQuantizer::check_quantized(const qf_module_info& module, const qf_tensor_list& tensors) {
  (void)check_tensors(module, tensors);
}

void HqqQuantizer::quantize(const sdk::Call& call, const qf_module_info& module,
                            const DLTensor& weight, const DLTensor* /*bias*/,
                            const qf_tensor_list* /*calibration*/, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_quantize_hqq(call, module);
  quantize_hqq(call, params_or_throw(module), module, weight, out);
}

void HqqQuantizer::dequantize(const sdk::Call& call, const qf_module_info& module,
                              const qf_tensor_list& tensors, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_dequantize_hqq(call, module, tensors, out);
  dequantize_hqq(call, module, tensors, out);
}

void HqqQuantizer::linear_forward(const sdk::Call& call, const qf_module_info& module,
                                  const qf_tensor_list& tensors, const DLTensor& x,
                                  const DLTensor* bias, DLTensor& y) {
  if (is_device_call(call)) return device_linear_forward_hqq(call, module, tensors, x, bias, y);
  linear_forward_hqq(call, module, tensors, x, bias, y);
}

std::string HqqQuantizer::postprocess(const std::string& /*model_config_json*/) {
  return to_quantization_config(config_).dump();
}

}  // namespace qforge::plugins::hqq
