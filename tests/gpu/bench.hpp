// R7 (PERFORMANCE.md): 4-bit GEMV GB/s and NF4 quantize GB/s, each over the device-to-device
// copy GB/s measured in the same run.
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_bench(const Plugin& plugin, Report& report, int iterations);

}  // namespace qforge::gpu_harness
