// validate_environment for the FP8 methods: transformers' rules (FineGrainedFP8HfQuantizer: CUDA
// compute capability >= 8.9; FbgemmFp8HfQuantizer: >= 9.0; no cpu/disk in a device_map when
// quantizing on the fly) with one deliberate difference (issue 6): where the FP8 hardware is
// missing qforge can run the method by emulation (dequantize on the fly, fp32 GEMM), but only
// when the user asks for it (`--allow-emulation`, or fp8's `dequantize: true`), and always says
// so. transformers silently dequantizes a pre-quantized fp8 model instead, and refuses to
// quantize without a GPU.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "environment_facts.hpp"  // plugins/common

namespace qforge::plugins::fp8 {

// QFORGE_FP8_GPU is defined (PUBLIC, so unit tests see it too) when CMake compiles cuda/.
#if defined(QFORGE_FP8_GPU)
inline constexpr bool kCudaKernelsBuilt = true;
#else
inline constexpr bool kCudaKernelsBuilt = false;
#endif

struct Fp8Rules {
  std::string method;    // "fp8" or "fbgemm_fp8", for messages
  int min_cc_major = 8;  // native FP8 needs this CUDA compute capability
  int min_cc_minor = 9;
  bool dequantize_requested = false;  // fp8's `dequantize: true` counts as asking for emulation
  bool cuda_kernels_built = false;    // this build carries the CUDA kernels (plugins/fp8/cuda)
};

// What validate_environment decided for the request's device(s).
struct Fp8Decision {
  std::string device = "cpu";  // where the weights go: "cpu", "cuda:0"
  bool emulated = false;       // true: no FP8 hardware path, the user allowed emulation
  std::string why;             // why emulation (empty when native)
  std::string allowed_by;      // "--allow-emulation" or "dequantize: true"
};

// Throws sdk::Error: FAILED_PRECONDITION when this machine cannot serve the request (no such
// GPU, a build without CUDA kernels, or emulation needed but not allowed), INVALID_ARGUMENT for
// a request transformers refuses too (cpu/disk mixed into a device_map while quantizing).
Fp8Decision check_fp8_environment(const Fp8Rules& rules, const EnvironmentFacts& env,
                                  const RequestFacts& request);

// One line for logs, plan and doctor: "emulation on cpu (allowed by --allow-emulation): ..." or
// "native FP8 on cuda:0".
std::string describe(const Fp8Decision& decision, const Fp8Rules& rules);

// describe_quantized's "kernels": what computes on each device kind in this build, and what this
// quantizer decided ("this_run") once validate_environment has run.
nlohmann::json kernels_json(const std::optional<Fp8Decision>& decision, const Fp8Rules& rules);

}  // namespace qforge::plugins::fp8
