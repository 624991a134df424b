// What calibration.cpp and calibration_sampling.cpp share: the unquantized network they load
// and the error mapping of the public calls.
#pragma once

#include <memory>
#include <new>
#include <string>

#include "qforge/calibration.hpp"
#include "runtime/runtime_internal.hpp"

namespace qforge::runtime::detail {

// The Llama-family network of an unquantized checkpoint, float32, a private copy (calibration
// replaces its weights). Bad input for quantized checkpoints and other families.
std::unique_ptr<LlamaNetwork> load_calibration_network(const Checkpoint& checkpoint,
                                                       const RuntimeOptions& runtime);

// The data-free sequences (calibration_sampling.cpp), from the network as it is now.
TokenBatch sample_tokens(const LlamaNetwork& net, const nlohmann::json& config,
                         const DataFreeOptions& options);

constexpr const char* kCalibrationOomFix =
    "use fewer or shorter calibration sequences, or a machine with more memory";

}  // namespace qforge::runtime::detail
