// `qforge eval MODEL --ids-file F`: mean next-token NLL and perplexity of a causal LM over the
// token-id sequences of F (one per line; runtime::read_token_file).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "qforge/runtime.hpp"
#include "runtime_flags.hpp"

namespace qforge::cli {
namespace {

struct EvalFlags {
  std::string model;
  std::string ids_file;
  RuntimeFlags runtime;
};

int run_eval(CliContext& ctx, const EvalFlags& flags) {
  const runtime::TokenBatch sequences = runtime::read_token_file(flags.ids_file).value();
  Host host(ctx.host_options());
  auto checkpoint = Checkpoint::open(flags.model).value();
  auto model = runtime::Model::load(host, checkpoint, flags.runtime.options()).value();
  const runtime::Perplexity p = model.evaluate(sequences).value();
  if (ctx.out->json()) {
    ctx.out->json_document({{"mean_nll", p.mean_nll},
                            {"perplexity", p.perplexity},
                            {"tokens", p.tokens},
                            {"sequences", sequences.size()}});
  } else {
    char line[256];
    std::snprintf(line, sizeof line,
                  "mean NLL %.6f  perplexity %.4f  over %lld tokens (%zu sequences)\n", p.mean_nll,
                  p.perplexity, static_cast<long long>(p.tokens), sequences.size());
    ctx.out->text(line);
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "eval", "Mean next-token NLL and perplexity of a causal LM over token-id sequences");
  auto flags = std::make_shared<EvalFlags>();
  cmd->add_option("MODEL", flags->model, "Checkpoint folder (dense or quantized)")->required();
  cmd->add_option("--ids-file", flags->ids_file,
                  "Token ids, one sequence per line (spaces or commas; '#' comments)")
      ->required()
      ->type_name("FILE");
  flags->runtime.add_to(*cmd);
  return Command{cmd, [&ctx, flags] { return run_eval(ctx, *flags); }};
}

}  // namespace qforge::cli
