// The hqq plugin's GPU checks: dequantize bit-exact against the same plugin's CPU path (4-bit and
// 2-bit, axis 1, F16 / BF16 / F32 compute dtypes, groups 64 and 128, both linear kernels'
// shapes), linear_forward within a float tolerance of the CPU forward, and the refusals (other
// layouts, quantize on the device, tensors off the device, bad bias).
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_hqq_checks(const Plugin& plugin, Report& report);

// Without a GPU: a CUDA dequantize must be refused with FAILED_PRECONDITION, not crash.
void hqq_no_gpu_checks(const Plugin& plugin, Report& report);

}  // namespace qforge::gpu_harness
