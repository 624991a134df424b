// The gptq plugin's GPU checks: dequantize bit-exact against the plugin's scalar CPU path
// (QFORGE_GPTQ_KERNEL=scalar) for 2/3/4/8 bits, v1 and v2 (checkpoint_format), groups 32 / 128 /
// whole rows, an act-order g_idx, F16 / BF16 / F32 outputs; the 4-bit linear_forward within a
// float tolerance of the CPU forward (GEMV and passes of several tokens, with bias); and the
// refusals (quantize on the device, non-4-bit forward, tensors off the device, a missing tensor).
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_gptq_checks(const Plugin& plugin, Report& report);

// Without a GPU: a CUDA dequantize must be refused with FAILED_PRECONDITION, not crash.
void gptq_no_gpu_checks(const Plugin& plugin, Report& report);

}  // namespace qforge::gpu_harness
