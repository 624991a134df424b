// `qforge plan MODEL --method M`: the dry run. Resolves the config, runs the pre-flight checks
// and prints what quantize would do to every module, without reading a weight.
#include <CLI/CLI.hpp>
#include <iomanip>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "method_options.hpp"
#include "plan_text.hpp"
#include "qforge/pipeline.hpp"

namespace qforge::cli {
namespace {

int run_plan(CliContext& ctx, const MethodOptions& options) {
  const PlanRequest request = options.to_request();
  Host host(ctx.host_options());
  auto checkpoint = Checkpoint::open(options.model).value();
  const Plan plan = make_plan(host, checkpoint, request).value();
  if (ctx.out->json()) {
    ctx.out->json_document(plan_to_json(plan));
  } else {
    ctx.out->text(plan_text(plan));
  }
  return 0;
}

}  // namespace

Command add_plan_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "plan", "Dry run: show what `quantize` would do to every module (no weight is read)");
  auto options = std::make_shared<MethodOptions>();
  options->add_to(*cmd);
  return Command{cmd, [&ctx, options] { return run_plan(ctx, *options); }};
}

}  // namespace qforge::cli
