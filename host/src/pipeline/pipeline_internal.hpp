// Helpers the pipeline files share: how a ModuleEntry becomes the plugin's ModuleInfo, the
// order output tensors are written in, and the quantizer set-up plan and inspect both need.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qforge/pipeline.hpp"

namespace qforge::pipeline {

// QF_MODULE_* kind for a role: linear and the output head are nn.Linear, conv1d is Conv1D,
// embeddings are embeddings, the rest (norms, unknown) are "other".
int32_t module_kind(ModuleRole role) noexcept;
ModuleInfo module_info(const ModuleEntry& module);

// True when `a` comes before `b` with digit runs compared as numbers, so model.layers.2 sorts
// before model.layers.10: the order transformers' state_dict has, which decides sharding.
bool natural_less(const std::string& a, const std::string& b);

// "[4096, 11008]"
std::string shape_text(const std::vector<int64_t>& shape);
uint64_t tensor_bytes(const OutputTensor& tensor);

// Selects the plugin for `config`, creates the instance and runs validate_environment on it
// (the instance keeps what it learned, e.g. bnb's default device). Failures are exit code 3.
struct PreparedQuantizer {
  Selection selection;
  std::shared_ptr<Quantizer> quantizer;
};
Result<PreparedQuantizer> prepare_quantizer(Host& host, const ResolvedConfig& config,
                                            const nlohmann::json& request,
                                            const std::optional<std::string>& pinned_plugin);

// Architecture maps from `dirs` (defaults when empty), the map for this checkpoint, and its
// module layout. The maps outlive the layout (it points into them), so both are returned.
struct ClassifiedModel {
  std::shared_ptr<std::vector<ArchitectureMap>> maps;
  ModelLayout layout;
};
Result<ClassifiedModel> classify(const Checkpoint& checkpoint,
                                 const std::vector<std::filesystem::path>& dirs);

// The plugin's outputs for one planned module: its weight (and bias) read from the checkpoint's
// mapping, `calibration` passed through (calibrated methods; null: none).
Result<std::vector<NamedTensor>> quantize_planned_module(
    const Plan& plan, const PlannedModule& pm, const Checkpoint& checkpoint, int threads,
    const std::vector<NamedView>* calibration = nullptr);

}  // namespace qforge::pipeline
