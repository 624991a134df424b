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
// "hessian", float32 [in, in], GPTQ's H = 2/S · XᵀX over the S calibration sequences.
#pragma once

#include <optional>

#include "qforge/calibration.hpp"
#include "qforge/pipeline.hpp"

namespace qforge {

struct CalibratedQuantizeOptions {
  // Calibration sequences (e.g. runtime::read_token_file); none: data-free sequences sampled
  // from the model itself (calibration.data_free).
  std::optional<runtime::TokenBatch> tokens;
  // true_sequential is taken from the method's config ("true_sequential", default true);
  // runtime.num_threads from QuantizeOptions::threads when 0.
  runtime::CalibrationOptions calibration;
};

// The plan's method declares that quantize needs calibration statistics.
bool needs_calibration(const Plan& plan);

// Calibration pass, then run_quantize. Errors of either stop the run; the output is then left as
// it was (run_quantize's guarantee: nothing is written before the pass ends).
Result<QuantizeSummary> run_calibrated_quantize(const Plan& plan, const Checkpoint& checkpoint,
                                                const QuantizeOptions& options,
                                                const CalibratedQuantizeOptions& calibrated);

}  // namespace qforge
