// verify_checkpoints: the order of work. (d) first, because the method and the plan of ORIG
// under QUANT's config decide what (b) and (c) expect; then (a), (b)/(c) with the
// reconstruction error, (e), and (f) through the model seam.
#include "verify/verify_internal.hpp"

namespace qforge {

Result<VerifyReport> verify_checkpoints(Host& host, const Checkpoint& original,
                                        const Checkpoint& quantized, const VerifyOptions& options) {
  using namespace verify;  // NOLINT(google-build-using-namespace): this room's own helpers
  VerifyReport report;
  VerifyCheck footprint = make_check("footprint");
  VerifyCheck layer_types = make_check("layer_types");
  VerifyCheck dtypes = make_check("dtypes");
  VerifyCheck config = make_check("config");
  VerifyCheck round_trip = make_check("round_trip");
  VerifyCheck reconstruction = make_check("reconstruction");

  auto planned = check_config(host, original, quantized, options, config);
  if (!planned.ok()) return planned.error();
  const std::optional<Plan>& plan = planned.value();
  if (plan) {
    report.quant_method = plan->config.quant_method;
    report.plugin_id = plan->selection.plugin_id;
  }
  auto thresholds =
      resolve_thresholds(host, report.plugin_id, report.quant_method, options.thresholds);
  if (!thresholds.ok()) return thresholds.error();

  check_footprint(original, quantized, thresholds.value(), footprint);
  std::string no_plan;
  if (plan) {
    QF_RETURN_IF_ERROR(check_modules(*plan, original, quantized, thresholds.value(), layer_types,
                                     dtypes, reconstruction, report.modules));
  } else {
    no_plan = "QUANT has no usable quantization_config (see the config check)";
    skip(layer_types, no_plan);
    skip(dtypes, no_plan);
    skip(reconstruction, no_plan);
  }
  check_round_trip(quantized, round_trip);

  report.checks = {footprint, layer_types, dtypes, config, round_trip, reconstruction};
  auto outputs = check_outputs(host, original, quantized, options, thresholds.value(), no_plan);
  if (!outputs.ok()) return outputs.error();
  for (auto& check : outputs.value()) report.checks.push_back(std::move(check));
  return report;
}

bool VerifyReport::passed() const {
  for (const auto& check : checks) {
    if (check.outcome == CheckOutcome::kFail) return false;
  }
  return true;
}

}  // namespace qforge
