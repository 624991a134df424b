// The gptq quantizer's hooks (see gptq_quantizer.hpp).
#include "gptq_quantizer.hpp"

#include <nlohmann/json.hpp>

#include "cpu/kernels.hpp"
#include "environment_facts.hpp"  // plugins/common
#include "gptq_compute.hpp"
#include "gptq_device.hpp"
#include "gptq_layout.hpp"

namespace qforge::plugins::gptq {
namespace {

using sdk::Error;

// The entry of `skip` naming module `name`: its last component, the full name, or a dotted
// prefix / suffix of it ("model.layers.1" skips model.layers.1.mlp but not model.layers.10.mlp).
const std::string* find_skip_match(const std::string& name, const std::vector<std::string>& skip) {
  const size_t dot = name.rfind('.');
  const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
  for (const auto& key : skip) {
    if (key.empty()) continue;
    const bool suffix = name.size() > key.size() &&
                        name.compare(name.size() - key.size(), key.size(), key) == 0 &&
                        name[name.size() - key.size() - 1] == '.';
    if (last == key || key == name || suffix || name.rfind(key + ".", 0) == 0) return &key;
  }
  return nullptr;
}

constexpr const char* kQuantizeNote =
    "gptq: quantizing with the GPTQ algorithm on each module's calibration Hessian (tensor "
    "\"hessian\", [in, in]); a module given none is quantized without it, with a warning naming "
    "it";

constexpr const char* kAlgorithmGptq =
    "gptq (AutoGPTQ fasterquant: Hessian from the calibration capture, Cholesky inverse, lazy "
    "128-column blocks); rtn (GPTQ's quantizer) for a module the host gives no Hessian";

const DLTensor* find_hessian(const qf_tensor_list* calibration) {
  return calibration == nullptr ? nullptr : sdk::find_tensor(calibration, kHessianName);
}

}  // namespace

GptqQuantizer::GptqQuantizer(const std::string& config_json)
    : config_(parse_gptq_config(config_json)) {}

void GptqQuantizer::validate_environment(const std::string& /*env_json*/,
                                         const std::string& request_json) {
  const RequestFacts request = parse_request(request_json);
  pre_quantized_ = request.pre_quantized;
  if (request.device && request.device->is_gpu()) {
    if (std::string(gpu_backend()) != "CUDA") {
      throw Error(QF_CODE_FAILED_PRECONDITION,
                  "gptq: no GPU kernels in this build (asked for " + request.device->text() + ")",
                  "this gptq plugin was compiled without nvcc, so it computes on the CPU only",
                  "run with --device cpu, or rebuild qforge with the CUDA toolkit installed");
    }
    if (!request.pre_quantized) {
      throw Error(QF_CODE_FAILED_PRECONDITION,
                  "gptq: quantizing on " + request.device->text() + " is not available",
                  "the GPTQ algorithm runs on the CPU; the CUDA kernels cover dequantize and the "
                  "4-bit linear_forward of quantized layers",
                  "quantize with --device cpu, then load the checkpoint on the GPU");
    }
  }
  const std::string kernels = std::string("CPU kernels: ") + cpu::isa_name(cpu::select_isa());
  if (pre_quantized_) {
    if (sdk::log_enabled(QF_LOG_INFO)) {
      sdk::log(QF_LOG_INFO, "gptq: loading a " + config_.checkpoint_format + " checkpoint (" +
                                (config_.v2() ? "qzeros store zero" : "qzeros store zero - 1") +
                                "); " + kernels);
    }
  } else if (sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO, std::string(kQuantizeNote) + "; " + kernels);
  }
}

std::string GptqQuantizer::update_dtype(const std::string& dtype) {
  // GptqHfQuantizer (v4.x): None -> float16, the dtype of GPTQ's scales and kernels.
  if (!dtype.empty()) return dtype;
  if (sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO, "Loading the model in `torch.float16` (GPTQ's scales are float16)");
  }
  return "float16";
}

bool GptqQuantizer::needs_quantization(const qf_module_info& module, std::string& reason) {
  if (module.kind != QF_MODULE_LINEAR) {
    reason = "not an nn.Linear (GPTQ's QuantLinear replaces nn.Linear only)";
    return false;
  }
  const std::string name = module_name(module);
  if (config_.modules_to_not_convert) {
    if (const std::string* key = find_skip_match(name, *config_.modules_to_not_convert)) {
      reason = "listed in modules_to_not_convert ('" + *key + "')";
      return false;
    }
  }
  const std::string skip = sdk::module_extra_string(module, "default_skip");
  if (!skip.empty()) {
    reason = "transformers' default skip list: " + skip;
    return false;
  }
  // optimum quantizes only Linears inside the repeated blocks (block_name_to_quantize, found by
  // name when unset): lm_head and embeddings stay dense.
  if (config_.block_name_to_quantize && name.rfind(*config_.block_name_to_quantize + ".", 0) != 0) {
    reason = "outside block_name_to_quantize ('" + *config_.block_name_to_quantize + "')";
    return false;
  }
  if (config_.modules_in_block_to_quantize) {
    bool listed = false;
    for (const auto& step : *config_.modules_in_block_to_quantize) {
      for (const auto& m : step) {
        if (name.size() > m.size() && name.compare(name.size() - m.size(), m.size(), m) == 0 &&
            name[name.size() - m.size() - 1] == '.') {
          listed = true;
        }
      }
    }
    if (!listed) {
      reason = "not listed in modules_in_block_to_quantize";
      return false;
    }
  }
  const std::string problem = packing_problem(config_, module.in_features, module.out_features);
  if (!problem.empty()) {
    reason = "does not pack as " + std::to_string(config_.bits) + "-bit GPTQ: " + problem;
    return false;
  }
  return true;
}

std::string GptqQuantizer::describe_quantized(const qf_module_info& module) {
  nlohmann::json described = nlohmann::json::parse(describe_json(config_, module));
  described["algorithm"] = pre_quantized_ ? "pre-quantized" : kAlgorithmGptq;
  described["kernels"] =
      std::string("cpu: ") + cpu::isa_name(cpu::select_isa()) + ", gpu: " + gpu_backend();
  return described.dump();
}

void GptqQuantizer::check_quantized(const qf_module_info& module, const qf_tensor_list& tensors) {
  check_tensors(config_, module, tensors);
}

void GptqQuantizer::quantize(const sdk::Call& call, const qf_module_info& module,
                             const DLTensor& weight, const DLTensor* /*bias*/,
                             const qf_tensor_list* calibration, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_quantize_gptq(call, module);
  call.throw_if_cancelled();
  const std::string name = module_name(module);
  const DLTensor* hessian = find_hessian(calibration);
  int64_t clamped = 0;
  if (hessian != nullptr) {
    const GptqReport report = quantize_gptq_module(call, config_, module, weight, *hessian, out);
    clamped = report.zero_clamped;
    if (sdk::log_enabled(QF_LOG_DEBUG)) {
      sdk::log(QF_LOG_DEBUG, "gptq: module '" + name + "': GPTQ, damp " +
                                 std::to_string(report.damp) +
                                 (config_.desc_act ? ", act-order" : "") +
                                 (config_.static_groups ? ", static groups" : ""));
    }
    if (report.dead_columns > 0 && sdk::log_enabled(QF_LOG_INFO)) {
      sdk::log(QF_LOG_INFO, "gptq: module '" + name + "': " + std::to_string(report.dead_columns) +
                                " inputs were never active in the calibration data (Hessian "
                                "diagonal 0); their weights are quantized as 0, as AutoGPTQ does");
    }
  } else {
    if (sdk::log_enabled(QF_LOG_WARN)) {
      sdk::log(QF_LOG_WARN,
               "gptq: module '" + name + "': no calibration tensor \"hessian\" " +
                   (calibration != nullptr && calibration->count > 0
                        ? "among the " + std::to_string(calibration->count) + " passed"
                        : "passed") +
                   "; quantizing by round-to-nearest (RTN) with GPTQ's quantizer, not the GPTQ "
                   "algorithm" +
                   (config_.desc_act ? " (desc_act needs the Hessian: natural column order)" : ""));
    }
    clamped = quantize_rtn_module(config_, module, weight, out);
  }
  if (clamped > 0 && sdk::log_enabled(QF_LOG_INFO)) {
    sdk::log(QF_LOG_INFO, "gptq: module '" + name + "': " + std::to_string(clamped) +
                              " asymmetric groups had zero point 0, which checkpoint_format "
                              "\"gptq\" (v1) cannot store; they were coded with zero 1 "
                              "(\"gptq_v2\" stores 0)");
  }
}

void GptqQuantizer::dequantize(const sdk::Call& call, const qf_module_info& module,
                               const qf_tensor_list& tensors, sdk::TensorSink& out) {
  if (is_device_call(call)) return device_dequantize_gptq(call, config_, module, tensors, out);
  dequantize_gptq(call, config_, module, tensors, out);
}

void GptqQuantizer::linear_forward(const sdk::Call& call, const qf_module_info& module,
                                   const qf_tensor_list& tensors, const DLTensor& x,
                                   const DLTensor* bias, DLTensor& y) {
  if (is_device_call(call)) {
    return device_linear_forward_gptq(call, config_, module, tensors, x, bias, y);
  }
  linear_forward_gptq(call, config_, module, tensors, x, bias, y);
}

std::string GptqQuantizer::postprocess(const std::string& /*model_config_json*/) {
  return to_quantization_config(config_).dump();
}

}  // namespace qforge::plugins::gptq
