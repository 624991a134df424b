// VerifyReport::to_json: what `qforge verify --json` prints. Field names are stable; absent
// figures are null, so a skipped check never reads as a number.
#include <cmath>

#include "verify/verify_internal.hpp"

namespace qforge {
namespace {

// JSON has no NaN or infinity: write them as strings rather than lose them to null.
nlohmann::json number(const std::optional<double>& v) {
  if (!v) return nullptr;
  if (!std::isfinite(*v)) return verify::format_figure(*v);
  return *v;
}

}  // namespace

nlohmann::json VerifyReport::to_json() const {
  nlohmann::json j;
  j["passed"] = passed();
  j["quant_method"] = quant_method;
  j["plugin"] = plugin_id;
  nlohmann::json cs = nlohmann::json::array();
  int failed = 0, skipped = 0;
  for (const auto& c : checks) {
    cs.push_back({{"id", c.id},
                  {"title", c.title},
                  {"outcome", check_outcome_name(c.outcome)},
                  {"figure", number(c.figure)},
                  {"threshold", number(c.threshold)},
                  {"comparison", c.comparison},
                  {"detail", c.detail}});
    if (c.outcome == CheckOutcome::kFail) ++failed;
    if (c.outcome == CheckOutcome::kSkipped) ++skipped;
  }
  j["checks"] = cs;
  j["failed"] = failed;
  j["skipped"] = skipped;
  nlohmann::json ms = nlohmann::json::array();
  for (const auto& m : modules) {
    ms.push_back({{"name", m.name},
                  {"bytes_before", m.bytes_before},
                  {"bytes_after", m.bytes_after},
                  {"relative_error", number(m.relative_error)}});
  }
  j["modules"] = ms;
  return j;
}

}  // namespace qforge
