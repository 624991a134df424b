// Human-readable forms of a plan and a quantize summary (the JSON forms are in the host).
#pragma once

#include <string>

#include "qforge/pipeline.hpp"

namespace qforge::cli {

std::string plan_text(const Plan& plan);
std::string plan_totals_text(const Plan& plan);
std::string summary_text(const Plan& plan, const QuantizeSummary& summary,
                         const std::string& out_dir);

}  // namespace qforge::cli
