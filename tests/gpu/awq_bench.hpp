// R7 for awq (PERFORMANCE.md): 4-bit group-128 dequantize GB/s and GEMV GB/s (F16 scales and
// activations, as AutoAWQ checkpoints run), GEMM layout at three shapes and GEMV layout at one,
// each over the device-to-device copy GB/s of the same run.
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_awq_bench(const Plugin& plugin, Report& report, int iterations, double copy);

}  // namespace qforge::gpu_harness
