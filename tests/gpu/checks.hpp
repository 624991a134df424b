// The correctness checks: every GPU kernel of the bnb plugin against the same plugin's CPU path
// on the same inputs (bit-exact for quantize, tolerance for dequantize and matmul).
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_checks(const Plugin& plugin, Report& report);

}  // namespace qforge::gpu_harness
