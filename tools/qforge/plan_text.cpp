#include "plan_text.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "output.hpp"

namespace qforge::cli {
namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string ratio_str(double r) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << r << "x";
  return s.str();
}

}  // namespace

std::string plan_totals_text(const Plan& plan) {
  std::ostringstream s;
  s << "Totals: " << plan.quantized << " modules quantized, " << plan.kept << " kept; "
    << format_bytes(plan.bytes_before) << " -> " << format_bytes(plan.bytes_after)
    << " (footprint ratio " << ratio_str(plan.footprint_ratio()) << ")\n";
  return s.str();
}

std::string plan_text(const Plan& plan) {
  std::ostringstream s;
  for (const auto& w : plan.warnings) s << "warning: " << w << "\n";
  if (plan.nothing_to_do) {
    s << "Nothing to do: " << plan.note << "\n";
    return s.str();
  }
  s << "Method " << plan.config.quant_method << " via plugin '" << plan.selection.plugin_id
    << "', architecture map '" << plan.family << "', dtype " << plan.dtype << "\n\n";
  size_t name_w = 6;
  for (const auto& pm : plan.modules) name_w = std::max(name_w, pm.module.name.size());
  s << std::left << std::setw(static_cast<int>(name_w)) << "module"
    << "  " << std::setw(16) << "shape"
    << "  " << std::setw(5) << "dtype"
    << "  " << std::setw(8) << "action"
    << "  " << std::setw(10) << "before"
    << "  " << std::setw(10) << "after"
    << "  reason\n";
  for (const auto& pm : plan.modules) {
    s << std::left << std::setw(static_cast<int>(name_w)) << pm.module.name << "  " << std::setw(16)
      << shape_str(pm.module.weight_shape) << "  " << std::setw(5)
      << dtype_to_string(pm.module.weight_dtype) << "  " << std::setw(8)
      << module_action_name(pm.action) << "  " << std::setw(10) << format_bytes(pm.bytes_before)
      << "  " << std::setw(10) << format_bytes(pm.bytes_after) << "  " << pm.reason << "\n";
  }
  if (!plan.loose_tensors.empty()) {
    s << "\n" << plan.loose_tensors.size() << " other tensors copied unchanged\n";
  }
  s << "\n" << plan_totals_text(plan);
  return s.str();
}

std::string summary_text(const Plan& plan, const QuantizeSummary& summary,
                         const std::string& out_dir) {
  std::ostringstream s;
  s << "Quantized " << summary.quantized << " modules with " << plan.config.quant_method
    << ", kept " << summary.kept << " (skipped: see `qforge plan`)\n"
    << "Bytes: " << format_bytes(summary.bytes_before) << " -> "
    << format_bytes(summary.bytes_after) << "; footprint ratio "
    << ratio_str(summary.footprint_ratio()) << "\n"
    << "Wrote " << out_dir << " (" << summary.written.shards << " shard"
    << (summary.written.shards == 1 ? "" : "s") << ") in " << std::fixed << std::setprecision(1)
    << summary.seconds << " s; peak memory " << format_bytes(summary.peak_rss_bytes) << " ("
    << format_bytes(summary.start_rss_bytes) << " at start)\n";
  return s.str();
}

}  // namespace qforge::cli
