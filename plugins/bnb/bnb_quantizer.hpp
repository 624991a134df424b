// The bitsandbytes quantizers: transformers' Bnb4BitHfQuantizer and Bnb8BitHfQuantizer as
// qforge SDK classes: the configuration hooks (FORMATS.md §2.1-2.3) and quantize, dequantize and
// linear_forward (4-bit: bnb_compute.cpp, 8-bit: bnb_compute_8bit.cpp; kernels in cpu/).
//
// Threading: as the ABI says, configuration hooks run one at a time per instance, which is what
// lets validate_environment remember the environment for update_device_map.
#pragma once

#include <optional>
#include <qforge/qf_plugin.hpp>
#include <string>
#include <vector>

#include "bnb_config.hpp"
#include "bnb_environment.hpp"

namespace qforge::plugins::bnb {

inline constexpr const char* kPluginId = "bnb";
inline constexpr const char* kPluginVersion = "0.1.0";  // must equal manifests/plugins/bnb.yaml
inline constexpr uint32_t kBnbFlags = QF_METHOD_SERIALIZABLE | QF_METHOD_TRAINABLE;
// transformers: "need more space for buffers that are created during quantization".
inline constexpr double kMaxMemoryFactor = 0.90;

// The entry of `skip` that excludes module `name` under transformers' rules, if any: the
// module's own (last) name is listed, or `key + "."` occurs in the full name, or key == name
// (replace_with_bnb_linear). So "model.layers.1" skips model.layers.1.mlp.up_proj but not
// model.layers.10.mlp.up_proj.
std::optional<std::string> find_skip_match(const std::string& name,
                                           const std::vector<std::string>& skip);

// floor(0.9 * v) without overflow or rounding error, for byte budgets.
int64_t scale_budget(int64_t bytes);

class BnbQuantizer : public sdk::Quantizer {
 public:
  BnbQuantizer(const std::string& config_json, BnbBits bits);

  const BnbConfig& config() const noexcept { return config_; }
  BnbBits bits() const noexcept { return bits_; }

  void validate_environment(const std::string& env_json, const std::string& request_json) override;
  std::string update_dtype(const std::string& dtype) override;
  std::string update_device_map(const std::string& device_map_json) override;
  std::string adjust_max_memory(const std::string& max_memory_json) override;
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
  BnbBits bits_;
  BnbConfig config_;
  // Where a null device_map sends the model; decided by validate_environment.
  std::optional<std::string> default_device_;
};

class Bnb4BitQuantizer final : public BnbQuantizer {
 public:
  static constexpr const char* kQuantMethod = kMethod4Bit;
  static constexpr uint32_t kFlags = kBnbFlags;
  explicit Bnb4BitQuantizer(const std::string& config_json)
      : BnbQuantizer(config_json, BnbBits::k4) {}
};

class Bnb8BitQuantizer final : public BnbQuantizer {
 public:
  static constexpr const char* kQuantMethod = kMethod8Bit;
  static constexpr uint32_t kFlags = kBnbFlags;
  explicit Bnb8BitQuantizer(const std::string& config_json)
      : BnbQuantizer(config_json, BnbBits::k8) {}
};

}  // namespace qforge::plugins::bnb
