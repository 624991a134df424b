#include "qforge/host.hpp"

#include <algorithm>
#include <mutex>
#include <set>

#include "plugins/discovery.hpp"
#include "plugins/host_services.hpp"
#include "plugins/plugin_library.hpp"
#include "qforge/logging.hpp"

namespace qforge {
namespace fs = std::filesystem;

uint32_t host_min_abi() noexcept { return QF_ABI_MAKE_VERSION(QF_ABI_MAJOR, 0); }
uint32_t host_max_abi() noexcept { return QF_ABI_VERSION; }

const char* plugin_state_name(PluginState state) noexcept {
  switch (state) {
    case PluginState::kDiscovered:
      return "discovered";
    case PluginState::kLoaded:
      return "loaded";
    case PluginState::kFailed:
      return "failed";
    case PluginState::kShadowed:
      return "shadowed";
  }
  return "unknown";
}

std::string PluginRecord::id() const {
  return manifest ? manifest->id : manifest_path.stem().string();
}

std::string Selection::explain() const {
  std::string s = "no plugin can serve '" + quant_method + "'";
  if (candidates.empty()) return s + ": no installed plugin declares it";
  s += ":";
  for (const auto& c : candidates) {
    if (!c.rejected_because.empty()) s += " " + c.plugin_id + ": " + c.rejected_because + ";";
  }
  if (!s.empty() && s.back() == ';') s.pop_back();
  return s;
}

Error Selection::error() const {
  return environment_error(explain(),
                           std::to_string(candidates.size()) + " candidate(s) considered",
                           "run `qforge doctor` for the full table; install a plugin for '" +
                               quant_method + "' or choose another --device");
}

namespace {

// Keeps a plugin initialised while a Host or a Quantizer uses it.
struct PluginLease {
  explicit PluginLease(std::shared_ptr<plugins::LoadedPlugin> p) : plugin(std::move(p)) {}
  ~PluginLease() { plugin->release(); }
  PluginLease(const PluginLease&) = delete;
  PluginLease& operator=(const PluginLease&) = delete;
  std::shared_ptr<plugins::LoadedPlugin> plugin;
};

bool method_declares(const MethodManifest& m, const std::string& name) {
  return m.quant_method == name ||
         std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end();
}

struct DeviceRequest {
  std::string backend = "cpu";  // cpu | cuda | rocm
  int index = 0;
};

Result<DeviceRequest> parse_device(const nlohmann::json& request) {
  DeviceRequest d;
  if (!request.is_object() || !request.contains("device") || request["device"].is_null()) return d;
  if (!request["device"].is_string()) {
    return usage_error("invalid device", "device must be a string like cpu, cuda:0 or rocm:0",
                       "pass --device cpu|cuda[:N]|rocm[:N]");
  }
  const std::string s = request["device"].get<std::string>();
  const auto colon = s.find(':');
  d.backend = s.substr(0, colon);
  if (d.backend == "hip") d.backend = "rocm";
  if (d.backend != "cpu" && d.backend != "cuda" && d.backend != "rocm") {
    return usage_error("unknown device '" + s + "'", "expected cpu, cuda[:N] or rocm[:N]",
                       "pass --device cpu|cuda[:N]|rocm[:N]");
  }
  if (colon != std::string::npos) {
    const std::string idx = s.substr(colon + 1);
    if (idx.empty() || idx.size() > 4 || idx.find_first_not_of("0123456789") != std::string::npos) {
      return usage_error("invalid device index in '" + s + "'", "expected a small integer",
                         "pass e.g. cuda:0");
    }
    d.index = std::stoi(idx);
  }
  return d;
}

// Why the manifest rules a method out on this device, or "" when it may serve.
std::string manifest_device_rejection(const MethodManifest& method, const DeviceRequest& device,
                                      const Environment& env) {
  const DeviceRequirement* req = nullptr;
  for (const auto& d : method.devices) {
    if (d.type == device.backend) req = &d;
  }
  if (req == nullptr) {
    std::string declared;
    for (const auto& d : method.devices) declared += (declared.empty() ? "" : ", ") + d.type;
    return "manifest declares devices [" + declared + "], not " + device.backend;
  }
  if (device.backend == "cpu") {
    for (const auto& f : req->cpu_features) {
      if (!env.has_cpu_feature(f)) return "needs CPU feature " + f + ", which this CPU lacks";
    }
    return "";
  }
  const GpuDevice* gpu = nullptr;
  for (const auto& g : env.devices) {
    if (g.backend == device.backend && g.index == device.index) gpu = &g;
  }
  if (gpu == nullptr) {
    std::string status = device.backend == "cuda" ? env.cuda_status : env.hip_status;
    return "no " + device.backend + " device " + std::to_string(device.index) + " on this machine" +
           (status.empty() ? "" : " (" + status + ")");
  }
  if (device.backend == "cuda" && req->min_cc_major) {
    const int need = *req->min_cc_major * 10 + req->min_cc_minor.value_or(0);
    const int have = gpu->cc_major * 10 + gpu->cc_minor;
    if (have < need) {
      return "needs CUDA compute capability >= " + std::to_string(*req->min_cc_major) + "." +
             std::to_string(req->min_cc_minor.value_or(0)) + ", " + gpu->name + " has " +
             std::to_string(gpu->cc_major) + "." + std::to_string(gpu->cc_minor);
    }
  }
  if (device.backend == "rocm" && !req->gcn_archs.empty() &&
      std::find(req->gcn_archs.begin(), req->gcn_archs.end(), gpu->gcn_arch) ==
          req->gcn_archs.end()) {
    return "needs one of the ROCm archs declared in the manifest; " + gpu->name + " is " +
           (gpu->gcn_arch.empty() ? std::string("unknown") : gpu->gcn_arch);
  }
  return "";
}

}  // namespace

struct Host::Impl {
  HostOptions options;
  std::vector<fs::path> search_path;
  Environment environment;
  mutable std::recursive_mutex mutex;
  std::vector<PluginRecord> records;
  std::map<std::string, std::shared_ptr<plugins::LoadedPlugin>> loaded;
  std::map<std::string, std::shared_ptr<PluginLease>> leases;  // plugins this Host initialised

  PluginRecord* active_record(const std::string& id) {
    for (auto& r : records) {
      if (r.manifest && r.manifest->id == id && r.state != PluginState::kShadowed) return &r;
    }
    return nullptr;
  }

  Result<std::shared_ptr<PluginLease>> lease(const std::string& id) {
    if (auto it = leases.find(id); it != leases.end()) return it->second;
    auto it = loaded.find(id);
    if (it == loaded.end()) {
      return internal_error("plugin '" + id + "' is not loaded", "lease before load");
    }
    QF_RETURN_IF_ERROR(it->second->acquire());
    auto l = std::make_shared<PluginLease>(it->second);
    leases.emplace(id, l);
    return l;
  }
};

Host::Host(HostOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->environment =
      impl_->options.environment ? *impl_->options.environment : probe_environment();
  impl_->search_path = plugins::build_search_path(impl_->options);
  impl_->records = plugins::discover_plugins(impl_->search_path);
}

Host::~Host() = default;  // leases release; plugins shut down when their last user is gone

const std::vector<fs::path>& Host::search_path() const { return impl_->search_path; }

std::vector<PluginRecord> Host::plugins() const {
  std::lock_guard<std::recursive_mutex> lock(impl_->mutex);
  return impl_->records;
}

const Environment& Host::environment() const { return impl_->environment; }

std::vector<MethodCatalogEntry> Host::method_catalog() const {
  std::lock_guard<std::recursive_mutex> lock(impl_->mutex);
  std::map<std::string, MethodCatalogEntry> by_method;
  auto add_unique = [](std::vector<std::string>& to, const std::vector<std::string>& from) {
    for (const auto& x : from) {
      if (std::find(to.begin(), to.end(), x) == to.end()) to.push_back(x);
    }
  };
  for (const auto& r : impl_->records) {
    if (!r.manifest || r.state == PluginState::kFailed || r.state == PluginState::kShadowed) {
      continue;
    }
    for (const auto& m : r.manifest->methods) {
      MethodCatalogEntry& e = by_method[m.quant_method];
      e.quant_method = m.quant_method;
      add_unique(e.aliases, m.aliases);
      add_unique(e.loading_attributes, m.loading_attributes);
      add_unique(e.known_keys, m.config_keys);
      for (const auto& [name, preset] : m.presets) e.presets.emplace(name, preset);
    }
  }
  std::vector<MethodCatalogEntry> out;
  for (auto& [_, e] : by_method) out.push_back(std::move(e));
  return out;
}

std::vector<std::string> Host::quant_methods() const {
  std::vector<std::string> out;
  for (const auto& e : method_catalog()) out.push_back(e.quant_method);
  return out;
}

Result<std::string> Host::add_manifest(const fs::path& manifest_path) {
  auto manifest = load_manifest(manifest_path);
  if (!manifest.ok()) return manifest.error();
  std::lock_guard<std::recursive_mutex> lock(impl_->mutex);
  const std::string id = manifest.value().id;
  std::error_code ec;
  for (auto& r : impl_->records) {
    if (r.manifest && r.manifest->id == id && r.state != PluginState::kShadowed) {
      if (fs::equivalent(r.manifest_path, manifest_path, ec)) return id;
      // The explicitly named manifest wins over one found on the search path.
      r.state = PluginState::kShadowed;
      r.shadowed_by = manifest_path;
    }
  }
  PluginRecord record;
  record.manifest_path = manifest_path;
  record.manifest = std::move(manifest).value();
  impl_->records.insert(impl_->records.begin(), std::move(record));
  return id;
}

Status Host::load(const std::string& plugin_id) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mutex);
  PluginRecord* record = impl_->active_record(plugin_id);
  if (record == nullptr) {
    return bad_input("unknown plugin '" + plugin_id + "'",
                     "no valid manifest with this id on the search path",
                     "run `qforge plugins` to list installed plugins");
  }
  if (record->state == PluginState::kLoaded) return ok_status();
  if (record->state == PluginState::kFailed && record->failure) return *record->failure;
  auto plugin = plugins::load_plugin_library(*record->manifest);
  if (!plugin.ok()) {
    record->state = PluginState::kFailed;
    record->failure = plugin.error();
    get_logger("host.loader")->warn("{}", plugin.error().to_string());
    return plugin.error();
  }
  record->state = PluginState::kLoaded;
  record->runtime_version = plugin.value()->runtime_version;
  record->negotiated_abi = plugin.value()->negotiated_abi;
  impl_->loaded[plugin_id] = plugin.value();
  return ok_status();
}

Result<std::unique_ptr<Quantizer>> Host::create_quantizer(const std::string& plugin_id,
                                                          const std::string& quant_method,
                                                          const nlohmann::json& config) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mutex);
  QF_RETURN_IF_ERROR(load(plugin_id));
  const auto& plugin = impl_->loaded.at(plugin_id);
  std::string canonical = quant_method;
  if (plugin->methods.count(canonical) == 0) {
    // An alias from the manifest maps to the canonical method name.
    for (const auto& m : impl_->active_record(plugin_id)->manifest->methods) {
      if (method_declares(m, quant_method)) canonical = m.quant_method;
    }
  }
  auto it = plugin->methods.find(canonical);
  if (it == plugin->methods.end()) {
    return bad_input("plugin '" + plugin_id + "' does not provide method '" + quant_method + "'",
                     "it provides " + std::to_string(plugin->methods.size()) + " other method(s)",
                     "choose a method the plugin lists in `qforge plugins`");
  }
  auto lease = impl_->lease(plugin_id);
  if (!lease.ok()) return lease.error();
  const qf_method* method = it->second;
  const std::string config_text = config.dump();
  qf_quantizer* instance = nullptr;
  const std::string context = "plugin '" + plugin_id + "' (" + canonical + ") create";
  qf_status* status = nullptr;
  try {
    status = method->create(config_text.c_str(), &instance);
  } catch (...) {
    return plugin_error(context + " threw", "exceptions must not cross the C ABI",
                        "report to the plugin vendor");
  }
  QF_RETURN_IF_ERROR(plugins::consume_status(status, context));
  if (instance == nullptr) {
    return plugin_error(context + " returned no instance", "create succeeded with *out == NULL",
                        "report to the plugin vendor");
  }
  std::shared_ptr<void> keepalive = lease.value();
  return std::unique_ptr<Quantizer>(
      new Quantizer(plugin_id, canonical, method, instance, std::move(keepalive)));
}

Selection Host::select(const SelectionRequest& request) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mutex);
  auto log = get_logger("host.select");
  Selection selection;
  selection.quant_method = request.quant_method;

  struct Entry {
    PluginRecord* record;
    const MethodManifest* method;
  };
  std::vector<Entry> entries;
  for (auto& r : impl_->records) {
    if (!r.manifest || r.state == PluginState::kShadowed) continue;
    for (const auto& m : r.manifest->methods) {
      if (method_declares(m, request.quant_method)) entries.push_back({&r, &m});
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.method->priority != b.method->priority) return a.method->priority > b.method->priority;
    return a.record->manifest->id < b.record->manifest->id;
  });

  auto device = parse_device(request.request);
  const nlohmann::json env_json = impl_->environment.to_json();
  for (const auto& e : entries) {
    Candidate c{e.record->manifest->id, e.method->priority, ""};
    if (request.pinned_plugin && *request.pinned_plugin != c.plugin_id) {
      c.rejected_because = "not the pinned plugin (--plugin " + *request.pinned_plugin + ")";
    } else if (!selection.plugin_id.empty()) {
      c.rejected_because = "lower rank than " + selection.plugin_id;
    } else if (!device.ok()) {
      c.rejected_because = device.error().to_string();
    } else if (e.record->state == PluginState::kFailed && e.record->failure) {
      c.rejected_because = "failed to load: " + e.record->failure->to_string();
    } else if (auto why = manifest_device_rejection(*e.method, device.value(), impl_->environment);
               !why.empty()) {
      c.rejected_because = why;
    } else if (auto loaded = load(c.plugin_id); !loaded.ok()) {
      c.rejected_because = "failed to load: " + loaded.error().to_string();
    } else {
      const plugins::QuietPluginLogs quiet;  // the chosen plugin's own quantizer logs it all again
      auto quantizer = create_quantizer(c.plugin_id, e.method->quant_method, request.config);
      if (!quantizer.ok()) {
        c.rejected_because = "rejected the config: " + quantizer.error().to_string();
      } else if (auto valid = quantizer.value()->validate_environment(env_json, request.request);
                 !valid.ok()) {
        c.rejected_because = "validate_environment: " + valid.error().to_string();
      } else {
        selection.plugin_id = c.plugin_id;
      }
    }
    if (!c.rejected_because.empty()) {
      log->info("plugin '{}' not chosen for '{}': {}", c.plugin_id, request.quant_method,
                c.rejected_because);
    }
    selection.candidates.push_back(std::move(c));
  }
  if (request.pinned_plugin &&
      std::none_of(selection.candidates.begin(), selection.candidates.end(),
                   [&](const Candidate& c) { return c.plugin_id == *request.pinned_plugin; })) {
    selection.candidates.push_back(
        Candidate{*request.pinned_plugin, 0,
                  "pinned with --plugin but it does not declare '" + request.quant_method + "'"});
  }
  return selection;
}

Result<ResolvedConfig> Host::resolve(const ConfigRequest& request) const {
  return resolve_config(request, method_catalog());
}

}  // namespace qforge
