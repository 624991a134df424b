// The fbgemm_fp8 quantizer's hooks (see fbgemm_quantizer.hpp).
#include "fbgemm_quantizer.hpp"

#include <nlohmann/json.hpp>

#include "fbgemm_compute.hpp"
#include "fp8_device.hpp"
#include "fp8_layout.hpp"
#include "fp8_quantizer.hpp"

namespace qforge::plugins::fp8 {

FbgemmFp8Quantizer::FbgemmFp8Quantizer(const std::string& config_json)
    : config_(parse_fbgemm_config(config_json)) {}

Fp8Rules FbgemmFp8Quantizer::rules() const {
  return Fp8Rules{kMethodFbgemmFp8, 9, 0, false, kCudaKernelsBuilt};
}

void FbgemmFp8Quantizer::validate_environment(const std::string& env_json,
                                              const std::string& request_json) {
  decision_ =
      check_fp8_environment(rules(), parse_environment(env_json), parse_request(request_json));
  const int32_t level = decision_->emulated ? QF_LOG_WARN : QF_LOG_INFO;
  if (sdk::log_enabled(level)) sdk::log(level, describe(*decision_, rules()));
}

std::string FbgemmFp8Quantizer::update_dtype(const std::string& dtype) {
  if (dtype.empty()) {
    if (sdk::log_enabled(QF_LOG_INFO)) {
      sdk::log(QF_LOG_INFO,
               "Overriding dtype=None with `dtype=torch.bfloat16` due to requirements of "
               "`fbgemm-gpu` to enable model loading in fp8. Pass your own dtype to specify the "
               "dtype of the remaining non-linear layers or pass dtype=torch.bfloat16 to remove "
               "this warning.");
    }
    return "bfloat16";
  }
  if (dtype == "float16") {
    throw sdk::Error(QF_CODE_INVALID_ARGUMENT,
                     "You cannot use FP8 with dtype=torch.float16. We recommend you passing "
                     "dtype=torch.bfloat16",
                     "FbgemmFp8HfQuantizer.update_dtype refuses float16 (its GEMM writes bfloat16)",
                     "pass --dtype bfloat16 (or leave it unset)");
  }
  return dtype;
}

bool FbgemmFp8Quantizer::needs_quantization(const qf_module_info& module, std::string& reason) {
  if (module.kind != QF_MODULE_LINEAR) {
    reason = "not an nn.Linear (FbgemmFp8Linear replaces nn.Linear only)";
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

std::string FbgemmFp8Quantizer::describe_quantized(const qf_module_info& module) {
  nlohmann::json described = nlohmann::json::parse(describe_fbgemm_json(module));
  described["kernels"] = kernels_json(decision_, rules());
  return described.dump();
}

void FbgemmFp8Quantizer::check_quantized(const qf_module_info& module,
                                         const qf_tensor_list& tensors) {
  check_fbgemm_tensors(module, tensors);
}

void FbgemmFp8Quantizer::quantize(const sdk::Call& call, const qf_module_info& module,
                                  const DLTensor& weight, const DLTensor* /*bias*/,
                                  const qf_tensor_list* /*calibration*/, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_quantize_fbgemm(call, module, weight, out);
  quantize_fbgemm(call, module, weight, out);
}

void FbgemmFp8Quantizer::dequantize(const sdk::Call& call, const qf_module_info& module,
                                    const qf_tensor_list& tensors, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_dequantize_fbgemm(call, module, tensors, out);
  dequantize_fbgemm(call, module, tensors, out);
}

void FbgemmFp8Quantizer::linear_forward(const sdk::Call& call, const qf_module_info& module,
                                        const qf_tensor_list& tensors, const DLTensor& x,
                                        const DLTensor* bias, DLTensor& y) {
  if (is_device_call(call)) {
    return device_linear_forward_fbgemm(call, config_, module, tensors, x, bias, y);
  }
  linear_forward_fbgemm(call, config_, module, tensors, x, bias, y);
}

std::string FbgemmFp8Quantizer::postprocess(const std::string& /*model_config_json*/) {
  return to_quantization_config(config_).dump();
}

}  // namespace qforge::plugins::fp8
