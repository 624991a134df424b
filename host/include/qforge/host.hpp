// qforge::Host: plugin discovery, lazy loading through the C ABI, and quantizer selection.
//
// Thread-safety: a Host may be used from several threads; discovery happens in the
// constructor, loading is serialised internally. Quantizer handles are independent objects;
// quantize/dequantize/linear_forward on one handle may run concurrently (the C ABI promises
// reentrancy), configuration calls must not.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/config.hpp"
#include "qforge/environment.hpp"
#include "qforge/error.hpp"
#include "qforge/manifest.hpp"
#include "qforge/tensor.hpp"

struct qf_method;
struct qf_quantizer;

namespace qforge {

inline constexpr const char* kHostVersion = "0.1.0";
// Oldest and newest C ABI versions this host speaks, packed as QF_ABI_MAKE_VERSION does.
uint32_t host_min_abi() noexcept;
uint32_t host_max_abi() noexcept;

struct HostOptions {
  // --plugin-dir folders, searched first, in the order given.
  std::vector<std::filesystem::path> plugin_dirs;
  // Also search QFORGE_PLUGIN_PATH (colon-separated). Ignored when the process is privileged
  // (setuid/setgid), as the Vulkan loader does.
  bool use_env_path = true;
  // Also search the build tree's and the install prefix's plugin folders.
  bool use_default_dirs = true;
  // Use this environment instead of probing the machine (tests, simulations).
  std::optional<Environment> environment;
};

enum class PluginState {
  kDiscovered,  // manifest valid, library not loaded yet (lazy)
  kLoaded,      // library loaded, ABI negotiated, methods match the manifest
  kFailed,      // manifest or library rejected; `failure` says why
  kShadowed,    // same id as an earlier manifest in search order; never loaded
};
const char* plugin_state_name(PluginState state) noexcept;

struct PluginRecord {
  std::filesystem::path manifest_path;
  std::optional<PluginManifest> manifest;  // empty when the manifest itself is broken
  PluginState state = PluginState::kDiscovered;
  std::optional<Error> failure;       // kFailed: what / why / fix
  std::filesystem::path shadowed_by;  // kShadowed: the manifest that won
  std::string runtime_version;        // kLoaded: the plugin's own version string
  uint32_t negotiated_abi = 0;        // kLoaded: packed ABI version in use
  std::string id() const;             // manifest id, or the file stem when broken
};

// One candidate plugin considered for a method, and why it lost (empty reason: chosen).
struct Candidate {
  std::string plugin_id;
  int priority = 0;
  std::string rejected_because;
};

struct Selection {
  std::string quant_method;
  std::string plugin_id;              // empty when no plugin can serve
  std::vector<Candidate> candidates;  // every plugin that declares the method, in rank order
  bool ok() const { return !plugin_id.empty(); }
  // "no plugin can serve 'x': a: reason; b: reason" for error messages.
  std::string explain() const;
  // The pre-flight error for a failed selection: exit code 3, every candidate's reason.
  Error error() const;
};

struct SelectionRequest {
  std::string quant_method;                          // canonical method
  nlohmann::json config = nlohmann::json::object();  // resolved quantization_config
  // {"pre_quantized": bool, "dtype": str|null, "device": "cpu"|"cuda:0", "device_map": obj|null,
  //  "allow_emulation": bool} (docs/environment.md, "The request")
  nlohmann::json request = nlohmann::json::object();
  std::optional<std::string> pinned_plugin;  // --plugin ID: must serve or fail
};

struct ModuleInfo {
  std::string name;
  int32_t kind = 0;  // QF_MODULE_*
  bool has_bias = false;
  int64_t in_features = 0;
  int64_t out_features = 0;
  DLDataType weight_dtype{kDLFloat, 32, 1};
  nlohmann::json extra = nlohmann::json::object();
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// A named, borrowed tensor (e.g. mapped from a checkpoint) handed to a plugin.
struct NamedView {
  std::string name;
  TensorView tensor;
};
std::vector<NamedView> views_of(const std::vector<NamedTensor>& tensors);

// A quantizer instance of one plugin method, made for one resolved config. Every call turns a
// plugin status into a qforge::Error (exit code 3 for FAILED_PRECONDITION, 5 for contract
// violations) and validates what the plugin returned before the host uses it.
class Quantizer {
 public:
  ~Quantizer();
  Quantizer(const Quantizer&) = delete;
  Quantizer& operator=(const Quantizer&) = delete;

  const std::string& plugin_id() const noexcept { return plugin_id_; }
  const std::string& quant_method() const noexcept { return quant_method_; }
  uint32_t flags() const noexcept;

  Status validate_environment(const nlohmann::json& env, const nlohmann::json& request);
  Result<std::string> update_dtype(const std::string& dtype);
  Result<nlohmann::json> update_device_map(const nlohmann::json& device_map);
  Result<nlohmann::json> adjust_max_memory(const nlohmann::json& max_memory);
  // {needed, reason}
  Result<std::pair<bool, std::string>> needs_quantization(const ModuleInfo& module);
  // {"tensors":[{"name","dtype","shape"}]}; UNIMPLEMENTED when the plugin cannot say.
  Result<nlohmann::json> describe_quantized(const ModuleInfo& module);
  // Quantizes on the CPU; outputs are checked: unique names, non-NULL buffers, finite float
  // values, and (when describe_quantized answers) exactly the described names/dtypes/shapes.
  // `num_threads` caps the host pool threads the plugin's parallel_for may use (0: all).
  // `calibration`: named statistics for calibrated methods (docs/calibration.md, "What the
  // plugin receives"), e.g. "hessian" float32 [in, in]; null or empty: none.
  Result<std::vector<NamedTensor>> quantize(const ModuleInfo& module, const TensorView& weight,
                                            const TensorView* bias, int num_threads = 0,
                                            const std::vector<NamedView>* calibration = nullptr);
  Result<std::vector<NamedTensor>> quantize(const ModuleInfo& module, const Tensor& weight,
                                            const Tensor* bias);
  Status check_quantized(const ModuleInfo& module, const std::vector<NamedView>& tensors);
  Status check_quantized(const ModuleInfo& module, const std::vector<NamedTensor>& tensors);
  Result<std::vector<NamedTensor>> dequantize(const ModuleInfo& module,
                                              const std::vector<NamedView>& tensors,
                                              int num_threads = 0);
  Result<std::vector<NamedTensor>> dequantize(const ModuleInfo& module,
                                              const std::vector<NamedTensor>& tensors);
  // y = x @ W^T + bias with the quantized tensors. x: [..., in] (float32/bfloat16/float16);
  // y: preallocated by the caller, [..., out], same dtype as x. UNIMPLEMENTED (kUnimplemented)
  // when the plugin has no forward: the caller dequantizes and multiplies instead.
  Status linear_forward(const ModuleInfo& module, const std::vector<NamedView>& tensors,
                        const TensorView& x, const TensorView* bias, Tensor& y,
                        int num_threads = 0);
  Result<nlohmann::json> postprocess(const nlohmann::json& model_config);

 private:
  friend class Host;
  Quantizer(std::string plugin_id, std::string quant_method, const qf_method* method,
            qf_quantizer* instance, std::shared_ptr<void> library_keepalive);
  std::string plugin_id_, quant_method_;
  const qf_method* method_;
  qf_quantizer* instance_;
  std::shared_ptr<void> keepalive_;  // the plugin library outlives every instance it made
};

class Host {
 public:
  explicit Host(HostOptions options = {});
  ~Host();  // runs every loaded plugin's shutdown; libraries stay mapped until process exit
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Folders searched, in order, after de-duplication.
  const std::vector<std::filesystem::path>& search_path() const;
  // Every manifest found, in search order, with its state. Reflects loads done so far.
  std::vector<PluginRecord> plugins() const;
  const Environment& environment() const;

  // Healthy (not failed/shadowed) manifests' methods, for config resolution.
  std::vector<MethodCatalogEntry> method_catalog() const;
  // Sorted, unique quant_method names declared by healthy manifests.
  std::vector<std::string> quant_methods() const;

  // Adds one manifest outside the search path (`plugins check`); returns its plugin id.
  Result<std::string> add_manifest(const std::filesystem::path& manifest_path);
  // Loads the library (once), negotiates and checks its methods against the manifest. A
  // failure marks the plugin failed and is returned; other plugins are unaffected.
  Status load(const std::string& plugin_id);

  // Selection: pin → manifest filter (devices, requirements) → validate_environment →
  // priority (higher first) → id. Loads candidates lazily. Every rejection is recorded.
  Selection select(const SelectionRequest& request);

  // A quantizer instance from a loaded (or loadable) plugin.
  Result<std::unique_ptr<Quantizer>> create_quantizer(const std::string& plugin_id,
                                                      const std::string& quant_method,
                                                      const nlohmann::json& config);

  // Resolves config (config.hpp) against this host's catalog.
  Result<ResolvedConfig> resolve(const ConfigRequest& request) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qforge
