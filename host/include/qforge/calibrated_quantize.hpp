// Quantizing with a calibrated method (GPTQ; a manifest with requires_calibration: true and a
// library flag QF_METHOD_REQUIRES_CALIBRATION): the plan's Llama-block linears are quantized
// inside a calibration pass (calibration.hpp), each with its input statistics, and the
// quantized weights (dequantized by the same plugin) replace the float ones before the next
// group is measured. run_quantize then writes the checkpoint, taking those modules' outputs as
// they are and quantizing the rest (outside the blocks) without statistics.
//
//   auto plan = qforge::make_plan(host, ckpt, req).value();
//   if (qforge::needs_calibration(plan)) {
//     qforge::CalibratedQuantizeOptions c;   // data-free unless c.tokens is set
//     auto done = qforge::run_calibrated_quantize(plan, ckpt, options, c).value();
//   }
//
// What each quantize call receives (docs/calibration.md, "What the plugin receives"):
// - `calibration: hessian` (GPTQ, the default): "hessian", float32 [in, in], GPTQ's
//   H = 2/S · XᵀX over the S calibration sequences;
// - `calibration: activation_scaling` (AWQ): the host searches per-channel scales and clipping
//   with the plugin's own quantize/dequantize (docs/awq.md "The search"), folds 1/s into the
//   previous operation and hands the plugin W·diag(s), clipped, with "activation_scales" (s,
//   float32 [in]) and "input_abs_mean" (mean |x| over the calibration tokens, float32 [in]).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qforge/calibration.hpp"
#include "qforge/pipeline.hpp"

namespace qforge {

// One scaling group of an activation-scaling method, as searched: block output errors (mean
// square over the evaluated calibration tokens) of the group's part of the block.
struct ScalingSearch {
  int64_t block = 0;
  std::string previous;               // what 1/s is folded into: a norm weight or a linear
  std::vector<std::string> modules;   // the linears scaled by s
  double ratio = 0;                   // the chosen grid ratio
  double error_round_to_nearest = 0;  // the planned linears quantized as they are
  double error_scaled = 0;            // with the chosen scales, before clipping
  double error_final = 0;             // the weights written: scaled, maybe clipped, quantized
  bool clipped = false;               // the clip search's bounds were kept (they lowered the error)
};

struct CalibratedQuantizeOptions {
  // Calibration sequences (e.g. runtime::read_token_file); none: data-free sequences sampled
  // from the model itself (calibration.data_free).
  std::optional<runtime::TokenBatch> tokens;
  // true_sequential is taken from the method's config ("true_sequential", default true);
  // runtime.num_threads from QuantizeOptions::threads when 0.
  runtime::CalibrationOptions calibration;
  // Activation-scaling methods: called once per scaling group searched.
  std::function<void(const ScalingSearch&)> on_scaling_group;
};

// The plan's method declares that quantize needs calibration statistics.
bool needs_calibration(const Plan& plan);

// Calibration pass, then run_quantize. Errors of either stop the run; the output is then left as
// it was (run_quantize's guarantee: nothing is written before the pass ends).
Result<QuantizeSummary> run_calibrated_quantize(const Plan& plan, const Checkpoint& checkpoint,
                                                const QuantizeOptions& options,
                                                const CalibratedQuantizeOptions& calibrated);

}  // namespace qforge
