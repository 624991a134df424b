// R7 for gptq (PERFORMANCE.md): 4-bit group-128 dequantize GB/s and GEMV GB/s (F16 scales and
// activations, as AutoGPTQ checkpoints run), each over the device-to-device copy GB/s of the
// same run.
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_gptq_bench(const Plugin& plugin, Report& report, int iterations, double copy);

}  // namespace qforge::gpu_harness
