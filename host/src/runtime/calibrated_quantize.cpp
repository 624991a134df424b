// run_calibrated_quantize (calibrated_quantize.hpp): the plugin quantizes each planned linear of
// a Llama block inside the calibration pass, with that linear's Hessian, and its dequantized
// result becomes the weight the rest of the pass sees.
#include "qforge/calibrated_quantize.hpp"

#include <qforge/qf_plugin.h>

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/pipeline_internal.hpp"
#include "qforge/logging.hpp"
#include "runtime/activation_scaling_consumer.hpp"
#include "verify/figures.hpp"

namespace qforge {
namespace {

using runtime::BlockHandle;
using runtime::LinearGroup;
using runtime::LinearStats;
using runtime::Replacements;

class PluginCalibrationConsumer final : public runtime::CalibrationConsumer {
 public:
  PluginCalibrationConsumer(const Plan& plan, const Checkpoint& checkpoint,
                            const QuantizeOptions& options,
                            std::map<std::string, std::vector<NamedTensor>>& outputs)
      : plan_(plan),
        checkpoint_(checkpoint),
        threads_(options.threads),
        cancel_(options.cancel),
        outputs_(outputs) {
    for (const auto& pm : plan.modules) planned_[pm.module.name] = &pm;
  }

  Result<Replacements> on_group(BlockHandle& /*block*/, const LinearGroup& /*group*/,
                                std::vector<LinearStats>& stats) override {
    if (cancel_ != nullptr && cancel_->load(std::memory_order_relaxed)) {
      return Error(ErrorCode::kCancelled, ExitCode::kInternal, "quantization cancelled",
                   "the run was asked to stop during calibration; nothing was written", "");
    }
    Replacements replaced;
    for (LinearStats& s : stats) {
      auto it = planned_.find(s.module);
      // Kept modules (modules_in_block_to_quantize, skip lists) stay float, as in the plan.
      if (it == planned_.end() || it->second->action != ModuleAction::kQuantize) continue;
      const PlannedModule& pm = *it->second;
      const TensorView hessian(DLDataType{kDLFloat, 32, 1}, {s.in_features, s.in_features},
                               s.hessian32.data());
      const std::vector<NamedView> calibration{{"hessian", hessian}};
      auto outputs =
          pipeline::quantize_planned_module(plan_, pm, checkpoint_, threads_, &calibration);
      if (!outputs.ok()) return outputs.error();
      auto dense = plan_.quantizer->dequantize(pm.info, views_of(outputs.value()), threads_);
      if (!dense.ok()) return dense.error();
      for (const auto& t : dense.value()) {
        if (t.name != "weight") continue;
        auto floats =
            verify::to_float32(TensorView::of(t.tensor), pm.module.name + " (dequantized)");
        if (!floats.ok()) return floats.error();
        replaced[s.module] = std::move(floats).value();
      }
      std::vector<float>().swap(s.hessian32);  // one group's statistics at a time
      outputs_[s.module] = std::move(outputs).value();
      ++quantized_;
    }
    return replaced;
  }

  int quantized() const noexcept { return quantized_; }

 private:
  const Plan& plan_;
  const Checkpoint& checkpoint_;
  int threads_;
  const std::atomic<bool>* cancel_;
  std::map<std::string, std::vector<NamedTensor>>& outputs_;
  std::map<std::string, const PlannedModule*> planned_;
  int quantized_ = 0;
};

}  // namespace

bool needs_calibration(const Plan& plan) {
  return plan.quantizer != nullptr && !plan.config.pre_quantized &&
         (plan.quantizer->flags() & QF_METHOD_REQUIRES_CALIBRATION) != 0;
}

Result<QuantizeSummary> run_calibrated_quantize(const Plan& plan, const Checkpoint& checkpoint,
                                                const QuantizeOptions& options,
                                                const CalibratedQuantizeOptions& calibrated) {
  auto log = get_logger("quantize");
  if (plan.nothing_to_do || plan.quantizer == nullptr) {
    return usage_error("nothing to quantize", plan.note.empty() ? "the plan is empty" : plan.note,
                       "pass --method or a config with a quant_method");
  }
  runtime::CalibrationOptions copt = calibrated.calibration;
  const bool scaling = plan.calibration == "activation_scaling";
  if (scaling) {
    detail::ActivationScalingConsumer::configure(copt);
  } else {
    copt.hessian = runtime::HessianPrecision::kFloat32;
    const nlohmann::json& config = plan.config.config;
    if (config.is_object() && config.contains("true_sequential") &&
        config["true_sequential"].is_boolean()) {
      copt.true_sequential = config["true_sequential"].get<bool>();
    }
  }
  if (copt.runtime.num_threads == 0) copt.runtime.num_threads = options.threads;
  log->info("{}: calibrating on {} ({})", plan.config.quant_method,
            calibrated.tokens
                ? std::to_string(calibrated.tokens->size()) + " given sequences"
                : std::to_string(copt.data_free.num_sequences) + " data-free sequences of " +
                      std::to_string(copt.data_free.seq_len) + " tokens",
            scaling ? "activation-aware scale and clip search"
                    : std::string("float32 Hessians; true_sequential ") +
                          (copt.true_sequential ? "on" : "off"));

  detail::ScaledOutputs outputs;
  std::optional<PluginCalibrationConsumer> hessian_consumer;
  std::optional<detail::ActivationScalingConsumer> scaling_consumer;
  runtime::CalibrationConsumer* consumer = nullptr;
  if (scaling) {
    consumer = &scaling_consumer.emplace(plan, checkpoint, options, calibrated, outputs);
  } else {
    consumer = &hessian_consumer.emplace(plan, checkpoint, options, outputs.quantized);
  }
  auto pass = runtime::calibrate(checkpoint, calibrated.tokens, copt, *consumer);
  if (!pass.ok()) return pass.error();
  const int calibrated_count =
      scaling ? scaling_consumer->quantized() : hessian_consumer->quantized();
  log->info("{}: {} linears quantized with calibration ({} sequences, {} tokens)",
            plan.config.quant_method, calibrated_count, pass.value().sequences,
            pass.value().tokens);
  int uncalibrated = 0;
  for (const auto& pm : plan.modules) {
    if (pm.action == ModuleAction::kQuantize && outputs.quantized.count(pm.module.name) == 0) {
      ++uncalibrated;
    }
  }
  if (uncalibrated > 0) {
    log->warn(
        "{}: {} planned modules lie outside the calibrated blocks and are quantized "
        "without statistics",
        plan.config.quant_method, uncalibrated);
  }
  QuantizeOptions write = options;
  write.precomputed = &outputs.quantized;
  write.rewritten = &outputs.rewritten;
  auto summary = run_quantize(plan, checkpoint, write);
  if (!summary.ok()) return summary;
  summary.value().calibrated = calibrated_count;
  summary.value().calibration_sequences = pass.value().sequences;
  summary.value().calibration_tokens = pass.value().tokens;
  return summary;
}

}  // namespace qforge
