// transformers' FbgemmFp8HfQuantizer (quant_method "fbgemm_fp8", FORMATS.md §2.7) as a qforge
// SDK class, with the same emulation rules and reports as fp8's (fp8_environment.hpp).
#pragma once

#include <optional>
#include <qforge/qf_plugin.hpp>
#include <string>

#include "fbgemm_config.hpp"
#include "fp8_environment.hpp"

namespace qforge::plugins::fp8 {

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
  Fp8Rules rules() const;

  FbgemmFp8Config config_;
  std::optional<Fp8Decision> decision_;  // set by validate_environment
};

}  // namespace qforge::plugins::fp8
