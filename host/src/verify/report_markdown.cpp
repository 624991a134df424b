// VerifyReport::to_markdown: the report a person reads (`qforge verify --report report.md`):
// the verdict, one table row per check, the plot, and the quantized modules by error.
#include <algorithm>
#include <cmath>

#include "verify/verify_internal.hpp"

namespace qforge {
namespace {

// Table cells cannot hold '|' or newlines.
std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string figure_cell(const std::optional<double>& v) {
  return v ? verify::format_figure(*v) : "-";
}

}  // namespace

std::string VerifyReport::to_markdown(const std::filesystem::path& plot_file) const {
  std::string s = "# qforge verify report\n\n";
  int failed = 0, skipped = 0;
  for (const auto& c : checks) {
    if (c.outcome == CheckOutcome::kFail) ++failed;
    if (c.outcome == CheckOutcome::kSkipped) ++skipped;
  }
  s += "- method: `" + (quant_method.empty() ? std::string("unknown") : quant_method) + "`" +
       (plugin_id.empty() ? "" : " (plugin `" + plugin_id + "`)") + "\n";
  s += "- result: **" + std::string(passed() ? "PASS" : "FAIL") + "** (" +
       std::to_string(checks.size() - static_cast<size_t>(failed + skipped)) + " passed, " +
       std::to_string(failed) + " failed, " + std::to_string(skipped) + " skipped)\n\n";
  s += "| check | result | figure | threshold | detail |\n| --- | --- | --- | --- | --- |\n";
  for (const auto& c : checks) {
    std::string threshold = c.threshold ? c.comparison + " " + figure_cell(c.threshold) : "-";
    s += "| `" + c.id + "` " + cell(c.title) + " | " + check_outcome_name(c.outcome) + " | " +
         figure_cell(c.figure) + " | " + cell(threshold) + " | " + cell(c.detail) + " |\n";
  }
  s += "\n## Per-module reconstruction error\n\n![per-module reconstruction error](" +
       plot_file.generic_string() + ")\n\n";
  std::vector<const ModuleFigures*> measured;
  for (const auto& m : modules) {
    if (m.relative_error) measured.push_back(&m);
  }
  std::stable_sort(measured.begin(), measured.end(),
                   [](const ModuleFigures* a, const ModuleFigures* b) {
                     // NaN first (the worst), and never inside a comparison.
                     auto key = [](const ModuleFigures* m) {
                       return std::isnan(*m->relative_error) ? HUGE_VAL : *m->relative_error;
                     };
                     return key(a) > key(b);
                   });
  if (!measured.empty()) {
    s += "| module | relative error | bytes before | bytes after |\n| --- | --- | --- | --- |\n";
    for (const ModuleFigures* m : measured) {
      s += "| `" + cell(m->name) + "` | " + verify::format_figure(*m->relative_error) + " | " +
           std::to_string(m->bytes_before) + " | " + std::to_string(m->bytes_after) + " |\n";
    }
  }
  return s;
}

}  // namespace qforge
