// The awq quantizer's hooks (see awq_quantizer.hpp).
#include "awq_quantizer.hpp"

#include <nlohmann/json.hpp>

#include "awq_compute.hpp"
#include "awq_device.hpp"
#include "awq_layout.hpp"
#include "cpu/kernels.hpp"
#include "environment_facts.hpp"  // plugins/common

namespace qforge::plugins::awq {
namespace {

using sdk::Error;

// transformers v4's replace_with_awq_linear and AutoAWQ's exclude_layers_to_not_quantize both
// skip a module when any entry is a SUBSTRING of its dotted name ("gate" also skips gate_proj).
const std::string* find_skip_match(const std::string& name, const std::vector<std::string>& skip) {
  for (const auto& key : skip) {
    if (!key.empty() && name.find(key) != std::string::npos) return &key;
  }
  return nullptr;
}

constexpr const char* kAlgorithmRtn =
    "rtn (AWQ's pseudo-quantizer, round-to-nearest; the activation-aware scale/clip search is "
    "not implemented yet)";

}  // namespace

AwqQuantizer::AwqQuantizer(const std::string& config_json)
    : config_(parse_awq_config(config_json)) {}

void AwqQuantizer::validate_environment(const std::string& /*env_json*/,
                                        const std::string& request_json) {
  const RequestFacts request = parse_request(request_json);
  pre_quantized_ = request.pre_quantized;
  if (request.device && request.device->is_gpu()) {
    throw Error(QF_CODE_FAILED_PRECONDITION,
                "awq: no GPU kernels (asked for " + request.device->text() + ")",
                "this landing of the awq plugin computes on the CPU only (scalar, AVX2 and "
                "AVX-512 kernels); transformers would run AutoAWQ's CUDA kernels here",
                "run with --device cpu");
  }
  if (sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO, std::string("awq: ") +
                              (pre_quantized_ ? "loading an AutoAWQ " : "quantizing to AutoAWQ ") +
                              version_name(config_.version) +
                              " checkpoint; CPU kernels: " + cpu::isa_name(cpu::select_isa()));
  }
}

std::string AwqQuantizer::update_dtype(const std::string& dtype) {
  // AwqQuantizer.update_torch_dtype: None -> float16 (AWQ's scales and kernels are float16).
  if (!dtype.empty()) return dtype;
  if (sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO, "Loading the model in `torch.float16` (AWQ's scales are float16)");
  }
  return "float16";
}

bool AwqQuantizer::needs_quantization(const qf_module_info& module, std::string& reason) {
  if (module.kind != QF_MODULE_LINEAR) {
    reason = "not an nn.Linear (AWQ's WQLinear replaces nn.Linear only)";
    return false;
  }
  const std::string name = module_name(module);
  if (config_.modules_to_not_convert) {
    if (const std::string* key = find_skip_match(name, *config_.modules_to_not_convert)) {
      reason = "listed in modules_to_not_convert ('" + *key + "', matched as a substring)";
      return false;
    }
  }
  // AwqQuantizer passes add_default_skips=True: the defaults stay even with a user list.
  const std::string skip = sdk::module_extra_string(module, "default_skip");
  if (!skip.empty()) {
    reason = "transformers' default skip list: " + skip;
    return false;
  }
  const std::string problem = packing_problem(config_, module.in_features, module.out_features);
  if (!problem.empty()) {
    reason = std::string("does not pack as AWQ ") + version_name(config_.version) + ": " + problem;
    return false;
  }
  return true;
}

std::string AwqQuantizer::describe_quantized(const qf_module_info& module) {
  nlohmann::json described = nlohmann::json::parse(describe_json(config_, module));
  described["algorithm"] = pre_quantized_ ? "pre-quantized" : kAlgorithmRtn;
  described["kernels"] =
      std::string("cpu: ") + cpu::isa_name(cpu::select_isa()) + ", gpu: " + gpu_backend();
  return described.dump();
}

void AwqQuantizer::check_quantized(const qf_module_info& module, const qf_tensor_list& tensors) {
  check_tensors(config_, module, tensors);
}

void AwqQuantizer::quantize(const sdk::Call& call, const qf_module_info& module,
                            const DLTensor& weight, const DLTensor* /*bias*/,
                            const qf_tensor_list* calibration, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_quantize_awq(call, module);
  call.throw_if_cancelled();
  const std::string name = module_name(module);
  if (calibration == nullptr && !config_.data_free) {
    // transformers: an AwqConfig on a model that is not pre-quantized is a ValueError
    // (requires_calibration). The host passes statistics to a calibrated run; none here means
    // the caller chose no calibration, which must be said explicitly.
    throw Error(QF_CODE_FAILED_PRECONDITION,
                "module '" + name + "': awq needs calibration statistics to quantize",
                "The quantization method awq does require the model to be pre-quantized. You "
                "explicitly passed `pre_quantized=False` meaning your model weights are not "
                "quantized. (transformers' AwqQuantizer; AWQ chooses its scales from calibration "
                "activations, and the host passed none)",
                "quantize with calibration (`qforge quantize --method awq`, without "
                "`--calibration none`), or choose the data-free round-to-nearest default "
                "explicitly with --set data_free=true");
  }
  // The activation-aware search runs in the host (manifest `calibration: activation_scaling`,
  // docs/awq.md "The search"): it hands over W·diag(s), already clipped, with the scales it
  // chose, and folds 1/s into the previous operation itself. What is left here is AWQ's
  // quantizer on that weight. Statistics of another kind (a Hessian) mean a host that did not
  // search: quantizing round-to-nearest is then worth a warning.
  const bool searched = sdk::find_tensor(calibration, "activation_scales") != nullptr;
  const int32_t level = calibration == nullptr || searched ? QF_LOG_DEBUG : QF_LOG_WARN;
  if (sdk::log_enabled(level)) {
    sdk::log(level,
             "awq: module '" + name + "': " +
                 (searched ? std::string("quantizing W·diag(s) with the host's activation scales")
                  : calibration == nullptr
                      ? std::string("round-to-nearest with AWQ's quantizer (data_free)")
                      : std::string("round-to-nearest with AWQ's quantizer: the statistics "
                                    "passed hold no \"activation_scales\" (the host did not "
                                    "run the activation-aware search)")));
  }
  quantize_rtn_module(config_, module, weight, out);
}

void AwqQuantizer::dequantize(const sdk::Call& call, const qf_module_info& module,
                              const qf_tensor_list& tensors, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_dequantize_awq(call, config_, module, tensors, out);
  dequantize_awq(call, config_, module, tensors, out);
}

void AwqQuantizer::linear_forward(const sdk::Call& call, const qf_module_info& module,
                                  const qf_tensor_list& tensors, const DLTensor& x,
                                  const DLTensor* bias, DLTensor& y) {
  if (is_device_call(call)) {
    return device_linear_forward_awq(call, config_, module, tensors, x, bias, y);
  }
  linear_forward_awq(call, config_, module, tensors, x, bias, y);
}

std::string AwqQuantizer::postprocess(const std::string& /*model_config_json*/) {
  return to_quantization_config(config_).dump();
}

}  // namespace qforge::plugins::awq
