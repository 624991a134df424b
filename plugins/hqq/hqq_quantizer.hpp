// transformers' HqqHfQuantizer (quant_method "hqq", FORMATS.md §2.8) as a qforge SDK class:
// calibration-free, CPU compute (quantize with hqq's proximal optimizer, dequantize, forward).
#pragma once

#include <qforge/qf_plugin.hpp>
#include <string>

#include "hqq_config.hpp"

namespace qforge::plugins::hqq {

inline constexpr const char* kPluginId = "hqq";
inline constexpr const char* kPluginVersion = "0.1.0";  // must equal manifests/plugins/hqq.yaml

class HqqQuantizer final : public sdk::Quantizer {
 public:
  static constexpr const char* kQuantMethod = kMethodHqq;
  static constexpr uint32_t kFlags = QF_METHOD_SERIALIZABLE;

  explicit HqqQuantizer(const std::string& config_json);

  const HqqConfig& config() const noexcept { return config_; }

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
  WeightQuantParams params_or_throw(const qf_module_info& module) const;

  HqqConfig config_;
};

}  // namespace qforge::plugins::hqq
