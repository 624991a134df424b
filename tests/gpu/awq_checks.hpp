// The awq plugin's GPU checks: dequantize bit-exact against the plugin's scalar CPU path
// (QFORGE_AWQ_KERNEL=scalar) for both checkpoint layouts (GEMM and GEMV), groups 24 / 32 / 64 /
// 128 / 132 / whole rows, zero points and symmetric, F16 / BF16 / F32 outputs; linear_forward
// within a float tolerance of the CPU forward (GEMV and passes of several tokens, with bias); and
// the refusals (quantize on the device, tensors off the device, wrong sizes, a missing tensor).
#pragma once

#include "harness_util.hpp"
#include "plugin.hpp"

namespace qforge::gpu_harness {

void run_awq_checks(const Plugin& plugin, Report& report);

// Without a GPU: a CUDA dequantize must be refused with FAILED_PRECONDITION, not crash.
void awq_no_gpu_checks(const Plugin& plugin, Report& report);

}  // namespace qforge::gpu_harness
