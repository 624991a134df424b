// The calibration consumer of activation-scaling methods (a manifest with `calibration:
// activation_scaling`, e.g. AWQ): per Llama block, the scale search of every scaling group on the
// block's original weights, the scales folded into the previous operation, the clip search,
// then each planned linear quantized by the plugin (docs/awq.md "The search").
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qforge/calibrated_quantize.hpp"
#include "qforge/calibration.hpp"
#include "qforge/pipeline.hpp"

namespace qforge::detail {

// What the pass hands run_quantize: the plugin's outputs by module, and tensors that are written
// in place of the checkpoint's (norm weights divided by the scales, kept linears scaled).
struct ScaledOutputs {
  std::map<std::string, std::vector<NamedTensor>> quantized;
  std::map<std::string, Tensor> rewritten;
};

class ActivationScalingConsumer final : public runtime::CalibrationConsumer {
 public:
  ActivationScalingConsumer(const Plan& plan, const Checkpoint& checkpoint,
                            const QuantizeOptions& options,
                            const CalibratedQuantizeOptions& calibrated, ScaledOutputs& outputs);
  ~ActivationScalingConsumer() override;

  // Statistics are kept until the block's last group; the whole block is then searched and
  // every planned linear of it replaced.
  Result<runtime::Replacements> on_group(runtime::BlockHandle& block,
                                         const runtime::LinearGroup& group,
                                         std::vector<runtime::LinearStats>& stats) override;

  int quantized() const noexcept;

  // The calibration options this consumer needs: mean |x| and up to 512 sampled rows per linear,
  // every group captured from the original block (true_sequential off), no Hessian.
  static void configure(runtime::CalibrationOptions& options);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qforge::detail
