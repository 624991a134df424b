// `qforge plugins`: lists every manifest on the search path with its methods (without loading
// anything unless --load), and `qforge plugins check MANIFEST`, the conformance check a plugin
// vendor runs before shipping (qforge/conformance.hpp).
#include <CLI/CLI.hpp>
#include <sstream>

#include "commands.hpp"
#include "plugin_views.hpp"
#include "qforge/conformance.hpp"
#include "qforge/host.hpp"

namespace qforge::cli {
namespace {

struct PluginsFlags {
  bool load = false;
  std::string manifest;  // plugins check MANIFEST
};

std::string method_line(const MethodManifest& m) {
  std::ostringstream s;
  s << "      " << m.quant_method << "  priority " << m.priority << "  devices";
  for (const auto& d : m.devices) s << " " << device_requirement_text(d);
  if (!m.aliases.empty()) {
    s << "  aliases";
    for (const auto& a : m.aliases) s << " " << a;
  }
  if (!m.presets.empty()) {
    s << "  presets";
    for (const auto& p : m.presets) s << " " << p.first;
  }
  if (m.requires_calibration) s << "  (needs calibration)";
  return s.str() + "\n";
}

int run_list(CliContext& ctx, const PluginsFlags& flags) {
  Host host(ctx.host_options());
  if (flags.load) {
    for (const auto& record : host.plugins()) {
      // A failure is recorded in the plugin's record and shown below.
      if (record.state == PluginState::kDiscovered) (void)host.load(record.id());
    }
  }
  const std::vector<PluginRecord> records = host.plugins();
  if (ctx.out->json()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : records) list.push_back(plugin_record_json(r));
    ctx.out->json_document(list);
    return 0;
  }
  std::ostringstream s;
  if (records.empty()) {
    s << "No plugin manifests found. Searched:\n";
    for (const auto& p : host.search_path()) s << "  " << p.string() << "\n";
    s << "Pass --plugin-dir DIR or set QFORGE_PLUGIN_PATH.\n";
  }
  for (const auto& r : records) {
    s << r.id();
    if (r.manifest) s << " " << r.manifest->version << " (" << r.manifest->vendor << ")";
    s << "  [" << plugin_state_name(r.state) << "]\n";
    s << "    manifest " << r.manifest_path.string() << "\n";
    if (r.manifest) s << "    library  " << r.manifest->library_path.string() << "\n";
    const std::string reason = record_reason(r);
    if (!reason.empty()) s << "    reason   " << reason << "\n";
    if (r.manifest) {
      s << "    methods\n";
      for (const auto& m : r.manifest->methods) s << method_line(m);
    }
  }
  ctx.out->text(s.str());
  return 0;
}

int run_check(CliContext& ctx, const PluginsFlags& flags) {
  CheckOptions options;
  options.environment = ctx.host_options().environment;
  const CheckReport report = check_plugin(flags.manifest, options);
  if (ctx.out->json()) {
    ctx.out->json_document(report.to_json());
  } else {
    std::ostringstream s;
    s << "Conformance check of plugin '" << report.plugin_id << "'"
      << (report.plugin_version.empty() ? "" : " " + report.plugin_version) << " ("
      << report.manifest.string() << ")\n";
    for (const auto& item : report.items) {
      std::string result = check_result_name(item.result);
      result.resize(16, ' ');
      s << "  " << result << item.name;
      if (!item.detail.empty()) s << ": " << item.detail;
      s << "\n";
    }
    s << (report.passed() ? "PASSED" : "FAILED") << ": " << report.count(CheckResult::kPass)
      << " passed, " << report.count(CheckResult::kFail) << " failed, "
      << report.count(CheckResult::kNotImplemented) << " not implemented, "
      << report.count(CheckResult::kSkipped) << " skipped\n";
    ctx.out->text(s.str());
  }
  return report.passed() ? 0 : static_cast<int>(ExitCode::kPlugin);
}

}  // namespace

Command add_plugins_command(CLI::App& parent, CliContext& ctx) {
  // Owned by the returned closures; CLI11 writes into it during parsing.
  auto flags = std::make_shared<PluginsFlags>();
  CLI::App* cmd = parent.add_subcommand(
      "plugins", "List plugin manifests and their methods (state without loading, unless --load)");
  cmd->add_flag("--load", flags->load, "Load every plugin, so load failures show in the list");
  CLI::App* check = cmd->add_subcommand(
      "check",
      "Conformance check for plugin vendors: load one plugin, negotiate, call every hook on "
      "small synthetic tensors and check what it returns; exit 0 when nothing failed, else 5");
  check->add_option("MANIFEST", flags->manifest, "The plugin's manifest (.yaml)")->required();
  return Command{cmd, [&ctx, flags, check] {
                   return check->parsed() ? run_check(ctx, *flags) : run_list(ctx, *flags);
                 }};
}

}  // namespace qforge::cli
