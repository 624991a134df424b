// R7 for hqq (PERFORMANCE.md): 4-bit group-64 dequantize GB/s and GEMV GB/s (axis 1, BF16), each
// over the device-to-device copy GB/s of the same run.
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_hqq_bench(const Plugin& plugin, Report& report, int iterations, double copy);

}  // namespace qforge::gpu_harness
