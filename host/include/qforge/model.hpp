// Architecture maps and module targeting: which tensors of a checkpoint are linear layers,
// embeddings, norms, the output head and tied weights (manifests/architectures/*.yaml), and the
// modules HF's get_keys_to_not_convert would leave alone by default (FORMATS.md §1.4).
//
// The host does not decide what a method skips: it hands each module to the plugin's
// needs_quantization with the facts (role, linear tag, and `default_skip` when transformers'
// default skip list holds the module), and the plugin applies its method's rules (bnb uses the
// defaults only when llm_int8_skip_modules is null; AWQ always adds them; ...).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"

namespace qforge {

enum class ModuleRole {
  kLinear,  // nn.Linear: weight [out, in]
  kConv1D,  // GPT-2 Conv1D: weight stored [in, out]
  kEmbedding,
  kNorm,
  kOutputHead,  // lm_head (a linear layer, skipped by default)
  kOther,       // a weight-bearing module that is none of the above (not 2-D: conv kernels,
                // 1-D scales); an unknown 2-D "X.weight" is treated as linear by every map
};
const char* module_role_name(ModuleRole role) noexcept;  // "linear", "conv1d", ...

// A module pattern of a map: a regex matched against the whole module name (no ".weight"),
// with optional shape expressions over config.json fields ("num_attention_heads * head_dim").
struct ModulePattern {
  std::string regex;
  ModuleRole role = ModuleRole::kLinear;
  std::optional<std::string> out_features;  // expression; Conv1D too: out is out
  std::optional<std::string> in_features;
};

struct ArchitectureMap {
  std::filesystem::path source;            // the YAML file
  std::string family;                      // "llama"; "generic" for the fallback
  std::vector<std::string> model_types;    // config.json model_type values served
  std::vector<std::string> architectures;  // config.json architectures[] entries served
  std::vector<ModulePattern> modules;      // first match wins, in file order
  // Derived config values: name -> expression, used when config.json lacks the key
  // (e.g. head_dim: hidden_size / num_attention_heads).
  std::vector<std::pair<std::string, std::string>> defaults;
  // Regexes (full match on module names) for the output head and the input embedding it is
  // tied to when tie_word_embeddings is true. Write the head as its plain name where possible
  // ('lm_head'): it names the head in tie notes when the checkpoint stores no head tensor.
  std::optional<std::string> output_head;
  std::optional<std::string> input_embedding;
  bool tie_word_embeddings_default = true;  // transformers' PretrainedConfig default
};

// Reads every *.yaml in `dirs` (strict: unknown keys, bad regexes and bad expressions are
// errors naming file and key). A family defined twice: the first directory wins.
Result<std::vector<ArchitectureMap>> load_architecture_maps(
    const std::vector<std::filesystem::path>& dirs);
// The existing folders of: QFORGE_ARCHITECTURE_PATH (colon-separated absolute paths; ignored
// when setuid/setgid), <prefix>/share/qforge/architectures beside libqforge and beside the
// running executable, the source tree's manifests/architectures, the configured install folder.
std::vector<std::filesystem::path> default_architecture_dirs();
// By config.json model_type, then architectures[], else the generic map (which must exist).
Result<const ArchitectureMap*> select_architecture(const std::vector<ArchitectureMap>& maps,
                                                   const nlohmann::json& model_config);

// Evaluates a shape expression: integers, config keys (ints), + - * / and parentheses;
// division must be exact. Errors name the expression and the missing/bad key.
Result<int64_t> evaluate_dimension(const std::string& expression, const nlohmann::json& config,
                                   const ArchitectureMap& map);

// One weight-bearing module of a checkpoint.
struct ModuleEntry {
  std::string name;    // "model.layers.0.self_attn.q_proj"
  std::string family;  // the map's family, for extra()
  ModuleRole role = ModuleRole::kOther;
  std::string tag;                    // HQQ linear tag: "self_attn.q_proj"
  std::vector<std::string> tensors;   // every checkpoint tensor "<name>.*", sorted
  std::optional<std::string> weight;  // "<name>.weight" when present
  std::optional<std::string> bias;    // "<name>.bias" when present
  std::vector<int64_t> weight_shape;  // as stored
  DLDataType weight_dtype{};          // as stored
  int64_t in_features = 0;            // from the weight (dense) or the map's expressions
  int64_t out_features = 0;           // (pre-quantized); 0 when unknown
  // Non-empty when transformers' default skip list (output embeddings, tied weights) holds
  // this module: the reason, e.g. "output head (lm_head)".
  std::string default_skip;
  // What the plugin sees in qf_module_info.extra_json:
  // {"role":"linear","tag":"self_attn.q_proj","family":"llama"[,"default_skip":"..."]}
  nlohmann::json extra() const;
};

struct ModelLayout {
  const ArchitectureMap* map = nullptr;
  std::vector<ModuleEntry> modules;        // checkpoint order of names (sorted)
  std::vector<std::string> loose_tensors;  // tensors of no module (buffers, rotary caches, ...)
  // Output heads tied to the input embedding (kept dense), listed even when the checkpoint
  // stores no head tensor (tie_word_embeddings checkpoints usually do not).
  std::vector<std::string> tied_weights;
};

// Groups the checkpoint's tensors into modules with the map, fills dimensions, and checks
// dense weights against the map's expressions (CF5: a q_proj of the wrong shape is an error
// naming the module, expected and actual shape, before any quantization work).
Result<ModelLayout> classify_modules(const ArchitectureMap& map, const Checkpoint& checkpoint);

}  // namespace qforge
