// `qforge quantize MODEL -o OUT --method M`: plan, then stream every module through the
// plugin into a new checkpoint, written atomically. Ctrl-C stops cleanly: the output folder is
// left as it was.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.hpp"
#include "method_options.hpp"
#include "plan_text.hpp"
#include "progress.hpp"
#include "qforge/pipeline.hpp"

namespace qforge::cli {
namespace {

struct QuantizeFlags {
  MethodOptions method;
  std::string out_dir;
  bool force = false;
  std::string max_shard_size = "5GB";
  int threads = 0;
};

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int /*signal*/) {
  g_interrupted.store(true);
  // A second Ctrl-C kills the process the usual way.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

int run_quantize_command(CliContext& ctx, const QuantizeFlags& flags) {
  const PlanRequest request = flags.method.to_request();
  auto shard_bytes = parse_shard_size(flags.max_shard_size);
  if (!shard_bytes.ok()) {
    const Error& e = shard_bytes.error();
    throw usage_error("--max-shard-size: " + e.summary(), e.why(), e.fix());
  }
  std::error_code ec;
  if (std::filesystem::exists(flags.out_dir, ec) && !flags.force) {
    throw bad_input("output '" + flags.out_dir + "' already exists",
                    "quantize never overwrites an existing output unless asked",
                    "pass --force to replace it (atomically), or choose another -o");
  }
  Host host(ctx.host_options());
  auto checkpoint = Checkpoint::open(flags.method.model).value();
  const Plan plan = make_plan(host, checkpoint, request).value();
  if (plan.nothing_to_do) {
    if (ctx.out->json()) {
      ctx.out->json_document({{"nothing_to_do", true}, {"note", plan.note}});
    } else {
      ctx.out->text("Nothing to do: " + plan.note + "\n");
    }
    return 0;
  }
  for (const auto& w : plan.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());

  ProgressReporter reporter(isatty(STDERR_FILENO) == 1 && !ctx.options.quiet);
  QuantizeOptions options;
  options.out_dir = flags.out_dir;
  options.writer.max_shard_bytes = shard_bytes.value();
  options.writer.overwrite = flags.force;
  options.threads = flags.threads;
  options.cancel = &g_interrupted;
  options.progress = [&reporter](const Progress& p) { reporter.update(p); };
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  auto summary = run_quantize(plan, checkpoint, options);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  reporter.finish();
  const QuantizeSummary& done = summary.value();
  if (ctx.out->json()) {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : done.written.files) files.push_back(f.string());
    ctx.out->json_document({{"output", flags.out_dir},
                            {"quant_method", plan.config.quant_method},
                            {"plugin", plan.selection.plugin_id},
                            {"modules_quantized", done.quantized},
                            {"modules_kept", done.kept},
                            {"bytes_before", done.bytes_before},
                            {"bytes_after", done.bytes_after},
                            {"footprint_ratio", done.footprint_ratio()},
                            {"shards", done.written.shards},
                            {"files", files},
                            {"seconds", done.seconds},
                            {"peak_rss_bytes", done.peak_rss_bytes},
                            {"start_rss_bytes", done.start_rss_bytes}});
  } else {
    ctx.out->text(summary_text(plan, done, flags.out_dir));
  }
  return 0;
}

}  // namespace

Command add_quantize_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "quantize", "Quantize a checkpoint into a new HF-compatible checkpoint folder");
  auto flags = std::make_shared<QuantizeFlags>();
  flags->method.add_to(*cmd);
  cmd->add_option("-o,--output", flags->out_dir, "Output folder (written atomically)")
      ->required()
      ->type_name("OUT");
  cmd->add_flag("--force", flags->force, "Replace OUT if it exists (atomically)");
  cmd->add_option("--max-shard-size", flags->max_shard_size,
                  "Largest output shard, transformers syntax (5GB, 500MB, 2GiB)")
      ->capture_default_str();
  cmd->add_option("--threads", flags->threads, "Threads per module (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  return Command{cmd, [&ctx, flags] { return run_quantize_command(ctx, *flags); }};
}

}  // namespace qforge::cli
