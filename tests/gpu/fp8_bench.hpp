// R7 for FP8 (PERFORMANCE.md): fine-grained (128x128) dequantize GB/s and GEMV GB/s, each over the
// device-to-device copy GB/s of the same run, and the block-scaled FP8 GEMM's TFLOP/s (the
// cuBLASLt BF16 denominator R7 names is not measured: the bundle carries no cuBLAS).
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_fp8_bench(const Plugin& plugin, Report& report, int iterations, double copy);

}  // namespace qforge::gpu_harness
