// `qforge inspect CKPT`: what a checkpoint holds — method and config, every module's stored
// tensors, the footprint — and whether each quantized module's tensor set is complete and
// consistent (the plugin's check_quantized). Exit 4 when a module is not.
#include <CLI/CLI.hpp>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "output.hpp"
#include "qforge/pipeline.hpp"

namespace qforge::cli {
namespace {

struct InspectFlags {
  std::string checkpoint;
  bool tensors = false;
  std::vector<std::string> arch_dirs;
};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string inspection_text(const Inspection& in, bool show_tensors) {
  std::ostringstream s;
  if (in.config) {
    s << "Quantized with " << in.config->quant_method << " (checked by plugin '"
      << (in.plugin_id.empty() ? "none" : in.plugin_id) << "')\n"
      << "quantization_config: " << in.config->config.dump() << "\n";
  } else {
    s << "Not quantized (config.json has no quantization_config)\n";
  }
  s << "Architecture map: " << in.family << "\n\n";
  for (const auto& m : in.modules) {
    s << m.module.name << "  [" << module_role_name(m.module.role) << "]  " << m.status << "  "
      << format_bytes(m.bytes) << "\n";
    if (show_tensors || m.status != "dense") {
      for (const auto& t : m.tensors) {
        s << "    " << t.name.substr(m.module.name.size() + 1) << "  " << t.dtype_name << " "
          << shape_str(t.shape) << "  " << format_bytes(t.nbytes) << "\n";
      }
    }
  }
  if (!in.loose_tensors.empty()) s << "\n" << in.loose_tensors.size() << " other tensors\n";
  for (const auto& w : in.warnings) s << "warning: " << w << "\n";
  s << "\nTotals: " << in.modules.size() << " modules (" << in.quantized << " quantized, "
    << in.dense << " dense, " << in.problems << " with problems); " << format_bytes(in.total_bytes)
    << " of tensors\n";
  return s.str();
}

int run_inspect(CliContext& ctx, const InspectFlags& flags) {
  Host host(ctx.host_options());
  auto checkpoint = Checkpoint::open(flags.checkpoint).value();
  std::vector<std::filesystem::path> dirs(flags.arch_dirs.begin(), flags.arch_dirs.end());
  const Inspection inspection = inspect_checkpoint(host, checkpoint, dirs).value();
  if (ctx.out->json()) {
    ctx.out->json_document(inspection_to_json(inspection));
  } else {
    ctx.out->text(inspection_text(inspection, flags.tensors));
  }
  if (inspection.problems > 0) {
    throw bad_input(std::to_string(inspection.problems) + " module(s) of '" + flags.checkpoint +
                        "' are incomplete or inconsistent",
                    "see the modules marked invalid above",
                    "re-create the checkpoint; it cannot be loaded as is");
  }
  return 0;
}

}  // namespace

Command add_inspect_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "inspect", "Show what a checkpoint holds and check every quantized module's tensors");
  auto flags = std::make_shared<InspectFlags>();
  cmd->add_option("CKPT", flags->checkpoint, "Checkpoint folder or .safetensors file")->required();
  cmd->add_flag("--tensors", flags->tensors, "List the tensors of dense modules too");
  cmd->add_option("--arch-dir", flags->arch_dirs, "Architecture map folder (instead of defaults)")
      ->type_name("DIR");
  return Command{cmd, [&ctx, flags] { return run_inspect(ctx, *flags); }};
}

}  // namespace qforge::cli
