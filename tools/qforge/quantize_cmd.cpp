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
#include <string>

#include "commands.hpp"
#include "method_options.hpp"
#include "plan_text.hpp"
#include "progress.hpp"
#include "qforge/calibrated_quantize.hpp"
#include "qforge/pipeline.hpp"
#include "qforge/runtime.hpp"

namespace qforge::cli {
namespace {

struct QuantizeFlags {
  MethodOptions method;
  std::string out_dir;
  bool force = false;
  std::string max_shard_size = "5GB";
  int threads = 0;
  std::string calibration;  // token-id file; empty: data-free
  int64_t calibration_sequences = 16;
  int64_t calibration_seq_len = 128;
  uint64_t calibration_seed = 0;
};

// Calibrated methods (GPTQ): the sequences given with --calibration, else data-free ones.
// Progress: one stderr line per block (calibrating a 7B model takes a while); quiet: none.
CalibratedQuantizeOptions calibration_options(const QuantizeFlags& flags, bool quiet) {
  CalibratedQuantizeOptions c;
  if (!flags.calibration.empty()) {
    c.tokens = runtime::read_token_file(flags.calibration).value();
  }
  c.calibration.data_free.num_sequences = flags.calibration_sequences;
  c.calibration.data_free.seq_len = flags.calibration_seq_len;
  c.calibration.data_free.seed = flags.calibration_seed;
  if (!quiet) {
    const std::string source =
        c.tokens ? std::to_string(c.tokens->size()) + " sequences from " + flags.calibration
                 : std::to_string(flags.calibration_sequences) + " data-free sequences of " +
                       std::to_string(flags.calibration_seq_len) +
                       " tokens sampled from the model (--calibration IDS to give your own)";
    std::fprintf(stderr, "calibration: %s\n", source.c_str());
  }
  c.calibration.progress = [quiet](const runtime::BlockProgress& p) {
    if (quiet) return;
    std::fprintf(stderr, "calibration: block %lld/%lld (%lld sequences, %lld tokens)\n",
                 static_cast<long long>(p.block + 1), static_cast<long long>(p.blocks),
                 static_cast<long long>(p.sequences), static_cast<long long>(p.tokens));
  };
  return c;
}

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
  const bool no_statistics = flags.calibration == "none";
  const bool calibrated = needs_calibration(plan) && !no_statistics;
  if (no_statistics && needs_calibration(plan)) {
    std::fprintf(stderr,
                 "warning: --calibration none: %s quantizes without calibration statistics (the "
                 "plugin's data-free fallback, e.g. GPTQ's round-to-nearest baseline)\n",
                 plan.config.quant_method.c_str());
  } else if (!calibrated && !flags.calibration.empty()) {
    std::fprintf(stderr, "warning: --calibration is ignored: %s needs no calibration\n",
                 plan.config.quant_method.c_str());
  }
  auto summary = calibrated ? run_calibrated_quantize(plan, checkpoint, options,
                                                      calibration_options(flags, ctx.options.quiet))
                            : run_quantize(plan, checkpoint, options);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  reporter.finish();
  const QuantizeSummary& done = summary.value();
  if (calibrated && !ctx.options.quiet) {
    std::fprintf(stderr,
                 "calibration: %d linears quantized with their statistics (%lld "
                 "sequences, %lld tokens)\n",
                 done.calibrated, static_cast<long long>(done.calibration_sequences),
                 static_cast<long long>(done.calibration_tokens));
  }
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
                            {"calibrated_modules", done.calibrated},
                            {"calibration_tokens", done.calibration_tokens},
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
  cmd->add_option("--calibration", flags->calibration,
                  "Calibrated methods (gptq): token-id file of calibration sequences (one "
                  "sequence per line, ids separated by spaces; docs/calibration.md), or `none` "
                  "to quantize without statistics (the method's data-free baseline); default: "
                  "data-free sequences sampled from the model")
      ->type_name("IDS");
  cmd->add_option("--calibration-sequences", flags->calibration_sequences,
                  "Data-free calibration: sequences to sample")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--calibration-seq-len", flags->calibration_seq_len,
                  "Data-free calibration: tokens per sequence")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--calibration-seed", flags->calibration_seed,
                  "Data-free calibration: sampling seed")
      ->capture_default_str();
  return Command{cmd, [&ctx, flags] { return run_quantize_command(ctx, *flags); }};
}

}  // namespace qforge::cli
