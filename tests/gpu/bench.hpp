// R7 (PERFORMANCE.md): 4-bit GEMV GB/s and NF4 quantize GB/s, each over the device-to-device
// copy GB/s measured in the same run.
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

// Device-to-device copy bandwidth (read + write counted) of a 1 GiB buffer, median of N: the
// denominator of every R7 ratio.
double copy_gbps(int iterations, Report& report);

// bnb: NF4 GEMV and quantize figures over `copy` (GB/s from copy_gbps).
void run_bench(const Plugin& plugin, Report& report, int iterations, double copy);

}  // namespace qforge::gpu_harness
