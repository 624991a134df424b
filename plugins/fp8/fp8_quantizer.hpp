// transformers' FineGrainedFP8HfQuantizer (quant_method "fp8", FORMATS.md §2.6) as a qforge SDK
// class. Where there is no FP8 hardware it computes by emulation (fp8_compute.hpp), only when
// the user allows it (fp8_environment.hpp), and says so in validate_environment's log and in
// describe_quantized's "kernels", which plan and doctor show.
#pragma once

#include <optional>
#include <qforge/qf_plugin.hpp>
#include <string>
#include <vector>

#include "fp8_config.hpp"
#include "fp8_environment.hpp"

namespace qforge::plugins::fp8 {

inline constexpr const char* kPluginId = "fp8";
inline constexpr const char* kPluginVersion = "0.1.0";  // must equal manifests/plugins/fp8.yaml

// The entry of `skip` that excludes module `name`, if any: the module's last name component,
// the full name, or a dotted prefix / suffix of it ("model.layers.1" skips
// model.layers.1.mlp.up_proj but not model.layers.10.mlp.up_proj).
std::optional<std::string> find_skip_match(const std::string& name,
                                           const std::vector<std::string>& skip);

class Fp8Quantizer final : public sdk::Quantizer {
 public:
  static constexpr const char* kQuantMethod = kMethodFp8;
  static constexpr uint32_t kFlags = QF_METHOD_SERIALIZABLE;  // is_trainable = False

  explicit Fp8Quantizer(const std::string& config_json);

  const Fp8Config& config() const noexcept { return config_; }

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

  Fp8Config config_;
  std::optional<Fp8Decision> decision_;  // set by validate_environment
};

}  // namespace qforge::plugins::fp8
