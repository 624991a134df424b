// `qforge doctor`: a report of the machine, the plugin search path, every manifest found with
// its state, and which plugin would serve each quant_method (or why none can). It loads every
// plugin, because reporting load failures is its job, and exits 0 even when some failed: the
// report is the result. Only a host that cannot run at all is an error.
#include <qforge/qf_plugin.h>

#include <CLI/CLI.hpp>
#include <map>
#include <sstream>

#include "commands.hpp"
#include "plugin_views.hpp"
#include "qforge/conformance.hpp"
#include "qforge/host.hpp"

namespace qforge::cli {
namespace {

struct MethodRow {
  std::string device;
  Selection selection;
  // Served only by emulation (the selection was made with allow_emulation: true); `declined` is
  // why it is refused without --allow-emulation.
  bool emulation_only = false;
  std::string declined;
};

nlohmann::json selection_json(const MethodRow& row) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& c : row.selection.candidates) {
    candidates.push_back(
        {{"plugin", c.plugin_id},
         {"priority", c.priority},
         {"rejected_because", c.rejected_because.empty() ? nlohmann::json(nullptr)
                                                         : nlohmann::json(c.rejected_because)}});
  }
  nlohmann::json j = {{"quant_method", row.selection.quant_method},
                      {"device", row.device},
                      {"chosen", row.selection.ok() ? nlohmann::json(row.selection.plugin_id)
                                                    : nlohmann::json(nullptr)},
                      {"candidates", candidates}};
  if (!row.selection.ok()) j["reason"] = row.selection.explain();
  j["emulation_only"] = row.emulation_only;
  if (row.emulation_only) j["without_allow_emulation"] = row.declined;
  return j;
}

// What a method's plugin says it would compute with on this machine: the "kernels" object some
// plugins put beside "tensors" in describe_quantized (bnb: {"cpu": "avx2"}). Asked for a
// Llama-shaped 4096x4096 linear layer; an empty object when the plugin says nothing.
struct KernelRow {
  std::string quant_method;
  std::string plugin;
  nlohmann::json kernels = nlohmann::json::object();
};

KernelRow kernels_of(Host& host, const MethodRow& row, const nlohmann::json& config) {
  KernelRow k{row.selection.quant_method, row.selection.plugin_id};
  auto q = host.create_quantizer(row.selection.plugin_id, row.selection.quant_method, config);
  if (!q.ok()) return k;
  ModuleInfo module;
  module.name = "model.layers.0.mlp.up_proj";
  module.kind = QF_MODULE_LINEAR;
  module.in_features = 4096;
  module.out_features = 4096;
  module.weight_dtype = DLDataType{kDLBfloat, 16, 1};
  auto described = q.value()->describe_quantized(module);
  if (described.ok() && described.value().contains("kernels") &&
      described.value()["kernels"].is_object()) {
    k.kernels = described.value()["kernels"];
  }
  return k;
}

std::string kernels_text(const std::vector<KernelRow>& rows) {
  std::ostringstream s;
  s << "Compute kernels (as each plugin reports them for this machine)\n";
  int shown = 0;
  for (const auto& row : rows) {
    for (const auto& [device, kernel] : row.kernels.items()) {
      s << "  " << row.plugin << " " << row.quant_method << " " << device << ": "
        << (kernel.is_string() ? kernel.get<std::string>() : kernel.dump()) << "\n";
      ++shown;
    }
  }
  if (shown == 0) s << "  no plugin reports its kernels\n";
  return s.str();
}

std::string environment_text(const Environment& env) {
  std::ostringstream s;
  s << "Environment\n";
  s << "  cpu        " << env.cpu_arch << ", " << (env.cpu_model.empty() ? "?" : env.cpu_model)
    << ", " << env.logical_cpus << " logical CPUs\n";
  s << "  features   ";
  if (env.cpu_features.empty()) s << "(none detected)";
  for (size_t i = 0; i < env.cpu_features.size(); ++i)
    s << (i > 0 ? " " : "") << env.cpu_features[i];
  s << "\n  memory     " << format_bytes(env.host_memory) << "\n";
  s << "  cuda       ";
  if (env.cuda_driver_found) {
    s << "driver " << env.cuda_driver_version / 1000 << "."
      << (env.cuda_driver_version % 1000) / 10;
  } else {
    s << "no driver";
  }
  if (!env.has_cuda())
    s << "; no devices" << (env.cuda_status.empty() ? "" : ": " + env.cuda_status);
  s << "\n  rocm       ";
  if (env.hip_runtime_found) {
    s << "runtime " << env.hip_runtime_version;
  } else {
    s << "no runtime";
  }
  if (!env.has_rocm()) s << "; no devices" << (env.hip_status.empty() ? "" : ": " + env.hip_status);
  s << "\n";
  for (const auto& d : env.devices) {
    s << "  " << d.backend << ":" << d.index << "     " << d.name << " (";
    if (d.backend == "cuda") {
      s << "compute capability " << d.cc_major << "." << d.cc_minor;
    } else {
      s << d.gcn_arch;
    }
    s << ", " << format_bytes(d.total_memory) << " total";
    if (d.free_memory > 0) s << ", " << format_bytes(d.free_memory) << " free";
    s << ")\n";
  }
  s << "  libtorch   tensors on cpu" << (env.torch_cuda ? " and cuda" : " only") << "\n";
  return s.str();
}

std::string plugins_text(const std::vector<PluginRecord>& records) {
  std::ostringstream s;
  s << "Plugins (" << records.size() << " manifest" << (records.size() == 1 ? "" : "s") << ")\n";
  if (records.empty()) s << "  none found: pass --plugin-dir or set QFORGE_PLUGIN_PATH\n";
  for (const auto& r : records) {
    s << "  " << r.id();
    if (r.manifest) s << " " << r.manifest->version << " (" << r.manifest->vendor << ")";
    s << "  [" << plugin_state_name(r.state) << "]  " << r.manifest_path.string() << "\n";
    if (r.manifest) {
      s << "      methods:";
      for (const auto& m : r.manifest->methods) s << " " << m.quant_method;
      s << "\n";
    }
    const std::string reason = record_reason(r);
    if (!reason.empty()) s << "      reason: " << reason << "\n";
  }
  return s.str();
}

std::string methods_text(const std::vector<MethodRow>& rows) {
  std::ostringstream s;
  s << "Methods (selection for an unquantized model: no dtype, no device map)\n";
  if (rows.empty()) s << "  no healthy plugin declares any quant_method\n";
  for (const auto& row : rows) {
    s << "  " << row.selection.quant_method << " on " << row.device << ": "
      << (row.selection.ok() ? row.selection.plugin_id : "none can serve")
      << (row.emulation_only ? " (emulation only: pass --allow-emulation)" : "") << "\n";
    for (const auto& c : row.selection.candidates) {
      s << "      " << c.plugin_id << " (priority " << c.priority
        << "): " << (c.rejected_because.empty() ? "chosen" : "rejected: " + c.rejected_because)
        << "\n";
    }
  }
  return s.str();
}

int run_doctor(CliContext& ctx) {
  Host host(ctx.host_options());

  for (const auto& record : host.plugins()) {
    // The status is recorded in the plugin's record, which the report shows.
    if (record.state == PluginState::kDiscovered) (void)host.load(record.id());
  }
  const std::vector<PluginRecord> records = host.plugins();
  const Environment& env = host.environment();

  // One config per method, from the first healthy manifest (search order) declaring it.
  std::map<std::string, nlohmann::json> configs;
  for (const auto& r : records) {
    if (!r.manifest || r.state == PluginState::kFailed || r.state == PluginState::kShadowed) {
      continue;
    }
    for (const auto& m : r.manifest->methods) {
      configs.emplace(m.quant_method, minimal_method_config(m));
    }
  }
  std::vector<std::string> devices = {"cpu"};
  if (env.has_cuda()) devices.emplace_back("cuda:0");
  if (env.has_rocm()) devices.emplace_back("rocm:0");

  std::vector<MethodRow> rows;
  for (const auto& method : host.quant_methods()) {
    for (const auto& device : devices) {
      SelectionRequest request;
      request.quant_method = method;
      auto config = configs.find(method);
      request.config =
          config != configs.end() ? config->second : nlohmann::json{{"quant_method", method}};
      request.request = {{"device", device},
                         {"pre_quantized", false},
                         {"dtype", nullptr},
                         {"device_map", nullptr}};
      MethodRow row{device, host.select(request), false, ""};
      if (!row.selection.ok()) {
        SelectionRequest emulated = request;
        emulated.request["allow_emulation"] = true;
        Selection again = host.select(emulated);
        if (again.ok()) {
          row.declined = row.selection.explain();
          row.selection = std::move(again);
          row.emulation_only = true;
        }
      }
      rows.push_back(std::move(row));
    }
  }

  // Kernel choices of the methods a plugin serves on the CPU (the CPU row is always there).
  std::vector<KernelRow> kernel_rows;
  for (const auto& row : rows) {
    if (row.device != "cpu" || !row.selection.ok()) continue;
    auto config = configs.find(row.selection.quant_method);
    kernel_rows.push_back(kernels_of(
        host, row,
        config != configs.end() ? config->second
                                : nlohmann::json{{"quant_method", row.selection.quant_method}}));
  }

  int loaded = 0;
  int failed = 0;
  int shadowed = 0;
  for (const auto& r : records) {
    loaded += r.state == PluginState::kLoaded ? 1 : 0;
    failed += r.state == PluginState::kFailed ? 1 : 0;
    shadowed += r.state == PluginState::kShadowed ? 1 : 0;
  }
  int servable = 0;
  for (const auto& row : rows) servable += row.selection.ok() ? 1 : 0;

  if (ctx.out->json()) {
    nlohmann::json search_path = nlohmann::json::array();
    for (const auto& p : host.search_path()) search_path.push_back(p.string());
    nlohmann::json plugins = nlohmann::json::array();
    for (const auto& r : records) plugins.push_back(plugin_record_json(r));
    nlohmann::json methods = nlohmann::json::array();
    for (const auto& row : rows) methods.push_back(selection_json(row));
    nlohmann::json kernels = nlohmann::json::array();
    for (const auto& k : kernel_rows) {
      kernels.push_back(
          {{"quant_method", k.quant_method}, {"plugin", k.plugin}, {"kernels", k.kernels}});
    }
    ctx.out->json_document({{"qforge_version", kHostVersion},
                            {"environment", env.to_json()},
                            {"search_path", search_path},
                            {"plugins", plugins},
                            {"methods", methods},
                            {"kernels", kernels},
                            {"summary",
                             {{"manifests", records.size()},
                              {"loaded", loaded},
                              {"failed", failed},
                              {"shadowed", shadowed},
                              {"selections", rows.size()},
                              {"servable", servable}}}});
    return 0;
  }

  std::ostringstream s;
  s << "qforge " << kHostVersion << " doctor\n\n" << environment_text(env) << "\n";
  s << "Plugin search path\n";
  if (host.search_path().empty()) s << "  (empty)\n";
  int i = 0;
  for (const auto& p : host.search_path()) s << "  " << ++i << ". " << p.string() << "\n";
  s << "\n" << plugins_text(records) << "\n" << methods_text(rows) << "\n";
  s << kernels_text(kernel_rows) << "\n";
  s << "Summary: " << records.size() << " manifests (" << loaded << " loaded, " << failed
    << " failed, " << shadowed << " shadowed); " << servable << " of " << rows.size()
    << " method/device pairs can be served\n";
  ctx.out->text(s.str());
  return 0;
}

}  // namespace

Command add_doctor_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "doctor",
      "Report the environment, every plugin manifest with its state, and which plugin serves "
      "each quant_method");
  return Command{cmd, [&ctx] { return run_doctor(ctx); }};
}

}  // namespace qforge::cli
