// Planning and streaming execution: what `qforge plan`, `qforge quantize` and `qforge inspect`
// do, as a C++ API for embedders.
//
//   qforge::Host host;
//   auto ckpt = qforge::Checkpoint::open("model").value();
//   qforge::PlanRequest req;  req.config.method = "nf4";
//   auto plan = qforge::make_plan(host, ckpt, req).value();        // no weight read yet
//   auto done = qforge::run_quantize(plan, ckpt, {.out_dir = "out"}).value();
//
// make_plan resolves the config, selects the plugin, runs validate_environment and the dtype /
// device-map hooks, classifies modules with the architecture map and asks the plugin about each
// one: every pre-flight error happens before a single weight byte is touched.
// run_quantize streams module by module (weights are read from the mapping as each module is
// quantized, outputs go straight to their place in the output shards), so peak memory is a few
// modules, not the model.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/config.hpp"
#include "qforge/host.hpp"
#include "qforge/model.hpp"

namespace qforge {

struct PlanRequest {
  // method / user config / --set; model_config is filled from the checkpoint.
  ConfigRequest config;
  std::string device = "cpu";        // cpu | cuda[:N] | rocm[:N]
  std::optional<std::string> dtype;  // dtype for non-quantized tensors (update_dtype)
  std::optional<std::string> pinned_plugin;
  std::vector<std::filesystem::path> architecture_dirs;  // empty: default_architecture_dirs()
  // The user accepts an emulated path where the method's hardware is missing (FP8 without a
  // GPU of compute capability >= 8.9); the request JSON's "allow_emulation".
  bool allow_emulation = false;
};

enum class ModuleAction {
  kQuantize,          // the plugin quantizes it
  kKeep,              // written unchanged (reason says why)
  kAlreadyQuantized,  // pre-quantized checkpoint: copied as stored
};
const char* module_action_name(ModuleAction action) noexcept;  // "quantize", "keep", ...

struct PlannedModule {
  ModuleEntry module;
  ModuleInfo info;  // what the plugin saw
  ModuleAction action = ModuleAction::kKeep;
  std::string reason;                 // why not quantized (empty for kQuantize)
  uint64_t bytes_before = 0;          // the module's stored tensors
  uint64_t bytes_after = 0;           // its output tensors
  std::vector<OutputTensor> outputs;  // full names, what the output will hold for this module
};

struct Plan {
  ResolvedConfig config;
  bool nothing_to_do = false;            // no quantization config anywhere, or already quantized
  std::string note;                      // why nothing_to_do
  std::string family;                    // architecture map used
  Selection selection;                   // chosen plugin and every candidate's reason
  std::shared_ptr<Quantizer> quantizer;  // null when nothing_to_do
  std::string dtype;                     // after update_dtype
  nlohmann::json device_map;             // after update_device_map
  std::vector<PlannedModule> modules;
  std::vector<std::string> loose_tensors;  // copied unchanged
  std::vector<OutputTensor> layout;        // every output tensor, in write order
  uint64_t bytes_before = 0, bytes_after = 0;
  int quantized = 0, kept = 0;
  // What a calibrated method's quantize needs (manifest `calibration:`): "hessian" or
  // "activation_scaling"; empty when the method needs no calibration.
  std::string calibration;
  nlohmann::json quantization_config;  // what postprocess returned
  nlohmann::json output_config;        // config.json to write
  std::vector<std::string> warnings;
  double footprint_ratio() const { return bytes_after ? double(bytes_before) / bytes_after : 0; }
};

Result<Plan> make_plan(Host& host, const Checkpoint& checkpoint, const PlanRequest& request);
nlohmann::json plan_to_json(const Plan& plan);

struct Progress {
  size_t modules_done = 0, modules_total = 0;
  uint64_t bytes_done = 0, bytes_total = 0;  // input bytes of the modules processed
  std::string current;                       // last module finished
};

struct QuantizeOptions {
  std::filesystem::path out_dir;
  WriterOptions writer;  // max shard size, overwrite (--force), fault injection
  int threads = 0;       // host pool threads per module call; 0: all cores
  std::function<void(const Progress&)> progress;  // called from the calling thread
  const std::atomic<bool>* cancel = nullptr;      // set to stop; the output is not created
  // Outputs already produced for some modules (a calibrated method's pass, see
  // calibrated_quantize.hpp), by module name: written as they are instead of calling the
  // plugin's quantize, and released once written.
  std::map<std::string, std::vector<NamedTensor>>* precomputed = nullptr;
  // Tensors written in place of the checkpoint's own, same name, dtype and shape (an
  // activation-scaling method's norm weights with 1/s folded in).
  const std::map<std::string, Tensor>* rewritten = nullptr;
};

struct QuantizeSummary {
  WriteSummary written;
  int quantized = 0, kept = 0;
  uint64_t bytes_before = 0, bytes_after = 0;
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;  // of the whole process so far (getrusage), for the report
  // Resident memory when run_quantize started (libraries, LibTorch, the plan): peak minus this
  // is what quantizing itself cost.
  uint64_t start_rss_bytes = 0;
  // Calibrated methods (calibrated_quantize.hpp): linears quantized with their statistics, and
  // the calibration sequences / tokens they were measured on; 0 otherwise.
  int calibrated = 0;
  int64_t calibration_sequences = 0, calibration_tokens = 0;
  double footprint_ratio() const { return bytes_after ? double(bytes_before) / bytes_after : 0; }
};

// Runs the plan. A plan with nothing_to_do is an error here (the CLI reports it and exits 0).
// Any failure leaves out_dir as it was (CheckpointWriter's guarantee).
Result<QuantizeSummary> run_quantize(const Plan& plan, const Checkpoint& checkpoint,
                                     const QuantizeOptions& options);

// What a checkpoint holds (qforge inspect).
struct InspectedModule {
  ModuleEntry module;
  std::string status;  // "dense", "quantized", "quantized (not checked)", "invalid: ..."
  std::vector<TensorInfo> tensors;  // as stored
  uint64_t bytes = 0;
};
struct Inspection {
  std::optional<ResolvedConfig> config;  // when config.json has quantization_config
  std::string plugin_id;                 // plugin that checked the modules ("" when none)
  std::string family;
  std::vector<InspectedModule> modules;
  std::vector<std::string> loose_tensors;
  uint64_t total_bytes = 0;
  int quantized = 0, dense = 0, problems = 0;
  std::vector<std::string> warnings;  // e.g. no plugin to check the modules with
};
// Groups tensors into modules and, for a quantized checkpoint, runs the plugin's
// check_quantized on every module that carries quantized tensors.
Result<Inspection> inspect_checkpoint(
    Host& host, const Checkpoint& checkpoint,
    const std::vector<std::filesystem::path>& architecture_dirs = {});
nlohmann::json inspection_to_json(const Inspection& inspection);

}  // namespace qforge
