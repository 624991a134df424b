// transformers' FbgemmFp8HfQuantizer (quant_method "fbgemm_fp8", FORMATS.md §2.7) as a qforge
// SDK class. CPU emulation only in this landing, reported like fp8's (fp8_quantizer.hpp).
#pragma once

#include <qforge/qf_plugin.hpp>
#include <string>

#include "fbgemm_config.hpp"

namespace qforge::plugins::fp8 {

inline constexpr const char* kFbgemmEmulationNote =
    "CPU emulation of f8f8bf16_rowwise: activations quantized to e4m3 per row, e4m3 products "
    "summed in fp32, row scales applied (no FP8 hardware path in this build)";

class FbgemmFp8Quantizer final : public sdk::Quantizer {
 public:
  static constexpr const char* kQuantMethod = kMethodFbgemmFp8;
  static constexpr uint32_t kFlags = QF_METHOD_SERIALIZABLE;

  explicit FbgemmFp8Quantizer(const std::string& config_json);

  const FbgemmFp8Config& config() const noexcept { return config_; }

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
  FbgemmFp8Config config_;
};

}  // namespace qforge::plugins::fp8
