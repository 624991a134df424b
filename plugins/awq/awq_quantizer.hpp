// transformers' AwqQuantizer (quant_method "awq", FORMATS.md §2.5) as a qforge SDK class. Loads
// and runs AutoAWQ GEMM and GEMV checkpoints on the CPU, and quantizes with AWQ's own quantizer
// round-to-nearest. The activation-aware scale and clip search (issue 9 item 2) is not in this
// landing: quantize() marks the place where it goes.
#pragma once

#include <qforge/qf_plugin.hpp>
#include <string>

#include "awq_config.hpp"

namespace qforge::plugins::awq {

inline constexpr const char* kPluginId = "awq";
inline constexpr const char* kPluginVersion = "0.1.0";  // must equal manifests/plugins/awq.yaml

class AwqQuantizer final : public sdk::Quantizer {
 public:
  static constexpr const char* kQuantMethod = kMethodAwq;
  // AwqQuantizer: requires_calibration True (the manifest says requires_calibration: true);
  // AutoAWQ GEMM/GEMV checkpoints are serializable and trainable (PEFT over WQLinear).
  static constexpr uint32_t kFlags =
      QF_METHOD_REQUIRES_CALIBRATION | QF_METHOD_SERIALIZABLE | QF_METHOD_TRAINABLE;

  explicit AwqQuantizer(const std::string& config_json);

  const AwqConfig& config() const noexcept { return config_; }

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
  AwqConfig config_;
  bool pre_quantized_ = false;
};

}  // namespace qforge::plugins::awq
