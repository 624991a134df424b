// `qforge generate MODEL --ids 1,2,3 -n 32`: greedy decoding with the runtime (token ids in and
// out; no tokenizer). Prints the new ids space-separated, or {"prompt":[...],"generated":[...]}
// with --json.
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "qforge/runtime.hpp"
#include "runtime_flags.hpp"

namespace qforge::cli {
namespace {

struct GenerateFlags {
  std::string model;
  std::string ids;
  int64_t new_tokens = 32;
  std::optional<int64_t> eos;
  RuntimeFlags runtime;
};

int run_generate(CliContext& ctx, const GenerateFlags& flags) {
  const std::vector<int64_t> prompt = parse_id_list(flags.ids, "--ids");
  Host host(ctx.host_options());
  auto checkpoint = Checkpoint::open(flags.model).value();
  auto model = runtime::Model::load(host, checkpoint, flags.runtime.options()).value();
  const std::vector<int64_t> generated =
      model.generate(prompt, flags.new_tokens, flags.eos).value();
  if (ctx.out->json()) {
    ctx.out->json_document({{"prompt", prompt}, {"generated", generated}});
  } else {
    std::string text;
    for (size_t i = 0; i < generated.size(); ++i) {
      text += (i ? " " : "") + std::to_string(generated[i]);
    }
    ctx.out->text(text + "\n");
  }
  return 0;
}

}  // namespace

Command add_generate_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "generate", "Greedy generation with the runtime: token ids in, new token ids out");
  auto flags = std::make_shared<GenerateFlags>();
  cmd->add_option("MODEL", flags->model, "Checkpoint folder (dense or quantized)")->required();
  cmd->add_option("--ids", flags->ids, "Prompt token ids, comma or space separated")
      ->required()
      ->type_name("IDS");
  cmd->add_option("-n,--max-new-tokens", flags->new_tokens, "Number of new tokens")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eos", flags->eos, "Stop after generating this id")->type_name("ID");
  flags->runtime.add_to(*cmd);
  return Command{cmd, [&ctx, flags] { return run_generate(ctx, *flags); }};
}

}  // namespace qforge::cli
