// transformers' GptqHfQuantizer (quant_method "gptq", FORMATS.md §2.4) as a qforge SDK class.
// Loads and runs GPTQ checkpoints (v1 and v2, with and without act-order) on the CPU, and
// quantizes with the GPTQ algorithm on the Hessian the host passes per module in `calibration`
// (gptq_compute.hpp kHessianName); a module without one is quantized by round-to-nearest with
// GPTQ's quantizer (RTN), with a warning naming it.
#pragma once

#include <qforge/qf_plugin.hpp>
#include <string>

#include "gptq_config.hpp"

namespace qforge::plugins::gptq {

inline constexpr const char* kPluginId = "gptq";
inline constexpr const char* kPluginVersion = "0.1.0";  // must equal manifests/plugins/gptq.yaml

class GptqQuantizer final : public sdk::Quantizer {
 public:
  static constexpr const char* kQuantMethod = kMethodGptq;
  // GPTQ is calibrated (the manifest says requires_calibration: true), serializable and
  // trainable (PEFT adapters on QuantLinear), as GptqHfQuantizer says.
  static constexpr uint32_t kFlags =
      QF_METHOD_REQUIRES_CALIBRATION | QF_METHOD_SERIALIZABLE | QF_METHOD_TRAINABLE;

  explicit GptqQuantizer(const std::string& config_json);

  const GptqConfig& config() const noexcept { return config_; }

  void validate_environment(const std::string& env_json, const std::string& request_json) override;
  std::string update_dtype(const std::string& dtype) override;
  bool needs_quantization(const qf_module_info& module, std::string& reason) override;
  std::string describe_quantized(const qf_module_info& module) override;
  void check_quantized(const qf_module_info& module, const qf_tensor_list& tensors) override;
  void quantize(const sdk::Call& call, const qf_module_info& module, const DLTensor& weight,
                const DLTensor* bias, const qf_tensor_list* calibration,
                sdk::TensorSink& out) override;
  void dequantize(const sdk::Call& call, const qf_module_info& module,
                  const qf_tensor_list& tensors, sdk::TensorSink& out) override;
  void linear_forward(const sdk::Call& call, const qf_module_info& module,
                      const qf_tensor_list& tensors, const DLTensor& x, const DLTensor* bias,
                      DLTensor& y) override;
  std::string postprocess(const std::string& model_config_json) override;

 private:
  GptqConfig config_;
  bool pre_quantized_ = false;
};

}  // namespace qforge::plugins::gptq
