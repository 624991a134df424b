// The FP8 plugin's GPU checks: every CUDA kernel of fp8 / fbgemm_fp8 against the same plugin's
// CPU path (bit-exact quantize and dequantize, forward within tolerance), and the native FP8
// tensor-core kernel against the emulation kernel on compute capability >= 8.9 (SKIP below).
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_fp8_checks(const Plugin& plugin, Report& report);

// Without a GPU: a CUDA quantize must be refused with FAILED_PRECONDITION, not crash.
void fp8_no_gpu_checks(const Plugin& plugin, Report& report);

}  // namespace qforge::gpu_harness
