// `qforge verify ORIG QUANT`: is QUANT a right quantization of ORIG? Prints one line per check
// (or the report as JSON with --json), writes a markdown report with an SVG plot when asked, and
// exits 4 when a check failed (docs/verify.md). The output checks run the models through
// qforge::runtime (runtime_model_loader).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "method_options.hpp"  // kAllowEmulationHelp
#include "output.hpp"
#include "qforge/verify.hpp"
#include "qforge/verify_runtime.hpp"

namespace qforge::cli {
namespace {

namespace fs = std::filesystem;

struct VerifyFlags {
  std::string original, quantized;
  std::string report;
  std::vector<std::string> thresholds;
  bool static_only = false;
  std::string ids_file;
  int64_t tokens = 32;
  int threads = 0;
  std::vector<std::string> arch_dirs;
  bool allow_emulation = false;
};

std::map<std::string, double> parse_thresholds(const std::vector<std::string>& flags) {
  std::map<std::string, double> out;
  for (const auto& flag : flags) {
    const size_t eq = flag.find('=');
    double value = 0;
    size_t used = 0;
    bool parsed = false;
    if (eq != std::string::npos && eq > 0) {
      try {
        value = std::stod(flag.substr(eq + 1), &used);
        parsed = used == flag.size() - eq - 1;
      } catch (const std::exception&) {
        parsed = false;
      }
    }
    if (!parsed) {
      throw usage_error("invalid --threshold '" + flag + "'", "expected ID=NUMBER",
                        "write e.g. --threshold top1=0.9");
    }
    out[flag.substr(0, eq)] = value;
  }
  return out;
}

std::string summary_text(const VerifyReport& report, const VerifyFlags& flags) {
  std::ostringstream s;
  s << "qforge verify: " << flags.original << " -> " << flags.quantized;
  if (!report.quant_method.empty()) {
    s << " (" << report.quant_method << ", plugin " << report.plugin_id << ")";
  }
  s << "\n";
  int failed = 0, skipped = 0;
  for (const auto& c : report.checks) {
    if (c.outcome == CheckOutcome::kFail) ++failed;
    if (c.outcome == CheckOutcome::kSkipped) ++skipped;
    char line[160];
    std::string figure = "-";
    if (c.figure) {
      std::snprintf(line, sizeof line, "%.4g", *c.figure);
      figure = line;
      if (c.threshold) {
        std::snprintf(line, sizeof line, "%.4g", *c.threshold);
        figure += " " + c.comparison + " " + line;
      }
    }
    std::snprintf(line, sizeof line, "  %-17s %-8s %-20s ", c.id.c_str(),
                  check_outcome_name(c.outcome), figure.c_str());
    s << line << c.detail << "\n";
  }
  s << "Result: " << (report.passed() ? "PASS" : "FAIL") << " ("
    << report.checks.size() - static_cast<size_t>(failed + skipped) << " passed, " << failed
    << " failed, " << skipped << " skipped)\n";
  return s.str();
}

// report.md -> report.svg beside it, referenced by its file name.
void write_report(const VerifyReport& report, const fs::path& path) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  fs::path plot = path;
  plot.replace_extension(".svg");
  if (plot == path) plot += ".svg";
  write_file_atomically(plot, report.plot_svg()).throw_if_error();
  write_file_atomically(path, report.to_markdown(plot.filename())).throw_if_error();
}

ModelLoader model_loader(const VerifyFlags& flags, const std::vector<fs::path>& dirs) {
  runtime::RuntimeOptions options;
  options.architecture_dirs = dirs;
  options.num_threads = flags.threads;
  options.allow_emulation = flags.allow_emulation;
  return runtime_model_loader(options);
}

int run_verify(CliContext& ctx, const VerifyFlags& flags) {
  VerifyOptions options;
  options.architecture_dirs.assign(flags.arch_dirs.begin(), flags.arch_dirs.end());
  options.thresholds = parse_thresholds(flags.thresholds);
  options.outputs = !flags.static_only;
  options.generate_tokens = flags.tokens;
  options.num_threads = flags.threads;
  options.allow_emulation = flags.allow_emulation;
  if (!flags.ids_file.empty()) options.inputs = runtime::read_token_file(flags.ids_file).value();
  options.load_model = model_loader(flags, options.architecture_dirs);
  Host host(ctx.host_options());
  const Checkpoint original = Checkpoint::open(flags.original).value();
  const Checkpoint quantized = Checkpoint::open(flags.quantized).value();
  const VerifyReport report = verify_checkpoints(host, original, quantized, options).value();
  if (!flags.report.empty()) write_report(report, flags.report);
  if (ctx.out->json()) {
    ctx.out->json_document(report.to_json());
  } else {
    ctx.out->text(summary_text(report, flags));
  }
  if (!report.passed()) {
    std::string ids;
    for (const auto& c : report.checks) {
      if (c.outcome == CheckOutcome::kFail) ids += (ids.empty() ? "" : ", ") + c.id;
    }
    throw bad_input("verification failed: " + ids,
                    "'" + flags.quantized + "' is not a faithful quantization of '" +
                        flags.original + "' (see each check's detail)",
                    "re-create the quantized checkpoint; or, for figures that are expected on "
                    "this model, relax them with --threshold ID=VALUE");
  }
  return 0;
}

}  // namespace

Command add_verify_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "verify", "Check a quantized checkpoint against its original: files, then outputs");
  auto flags = std::make_shared<VerifyFlags>();
  cmd->add_option("ORIG", flags->original, "The dense checkpoint QUANT was made from")->required();
  cmd->add_option("QUANT", flags->quantized, "The quantized checkpoint")->required();
  cmd->add_option("--report", flags->report,
                  "Write a markdown report here, with the per-module error plot as SVG beside it")
      ->type_name("FILE");
  cmd->add_option("--threshold", flags->thresholds,
                  "Override a check's threshold, e.g. top1=0.9 (repeatable; docs/verify.md)")
      ->type_name("ID=VALUE")
      ->allow_extra_args(false);
  cmd->add_flag("--static-only", flags->static_only, "Check the files only; do not run the models");
  cmd->add_option("--ids-file", flags->ids_file,
                  "Input token ids for the output checks (one sequence per line); default: "
                  "seeded random sequences")
      ->type_name("FILE");
  cmd->add_option("-n,--tokens", flags->tokens, "Greedy-generation tokens compared per prompt")
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
  cmd->add_option("--threads", flags->threads, "Threads for the models (0: every core)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--arch-dir", flags->arch_dirs, "Architecture map folder (instead of defaults)")
      ->type_name("DIR")
      ->allow_extra_args(false);
  cmd->add_flag("--allow-emulation", flags->allow_emulation, kAllowEmulationHelp);
  return Command{cmd, [&ctx, flags] { return run_verify(ctx, *flags); }};
}

}  // namespace qforge::cli
