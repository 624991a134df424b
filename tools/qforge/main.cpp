// qforge: the command-line interface, thin over the host C++ API (host/include/qforge/).
// main() contains stdout first (see output.hpp for why), parses the global flags, runs the chosen
// subcommand and maps every failure to the exit codes of ARCHITECTURE.md:
// 0 ok, 1 internal, 2 usage, 3 environment validation failed, 4 bad input, 5 plugin failure.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "context.hpp"
#include "output.hpp"
#include "qforge/host.hpp"

namespace qforge::cli {
namespace {

std::string version_text() {
  const auto abi = [](uint32_t v) {
    return std::to_string(v >> 16) + "." + std::to_string(v & 0xFFFFu);
  };
  return std::string("qforge ") + kHostVersion + " (plugin C ABI " + abi(host_min_abi()) + " to " +
         abi(host_max_abi()) + ")";
}

void add_global_options(CLI::App& app, GlobalOptions& o) {
  app.add_option("--plugin-dir", o.plugin_dirs,
                 "Search this folder for plugin manifests first (repeatable, in order)")
      ->type_name("DIR")
      ->allow_extra_args(false);
  app.add_flag("--no-env-path", o.no_env_path, "Ignore QFORGE_PLUGIN_PATH");
  app.add_flag("--no-default-dirs", o.no_default_dirs,
               "Do not search the build tree's and install prefix's plugin folders");
  app.add_flag("--json", o.json, "Machine-readable output: one JSON document on stdout");
  app.add_flag("-v,--verbose", o.verbose, "More logging on stderr (-v debug, -vv trace)");
  app.add_flag("-q,--quiet", o.quiet, "Log errors only");
  app.add_option("--log-level", o.log_level, "Log level on stderr (wins over -v and -q)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--env", o.env_file,
                 "Use this environment (JSON, as `doctor --json` prints it) instead of probing "
                 "the machine; for tests and simulating GPUs")
      ->type_name("FILE");
}

int run(int argc, char** argv, CliContext& ctx) {
  CLI::App app{"qforge: quantize neural-network weights through plugins", "qforge"};
  // Global flags may follow the subcommand too: `qforge doctor --json`.
  app.fallthrough();
  app.set_version_flag("--version", version_text());
  add_global_options(app, ctx.options);
  const std::vector<Command> commands = {
      add_doctor_command(app, ctx),   add_plugins_command(app, ctx), add_plan_command(app, ctx),
      add_quantize_command(app, ctx), add_inspect_command(app, ctx), add_bench_command(app, ctx),
      add_convert_command(app, ctx),  add_verify_command(app, ctx),  add_generate_command(app, ctx),
      add_eval_command(app, ctx)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version go to stdout; parse errors are usage errors (exit 2) on stderr.
    std::ostringstream out;
    std::ostringstream err;
    const int code = app.exit(e, out, err);
    ctx.out->text(out.str());
    std::fputs(err.str().c_str(), stderr);
    if (code == 0) return 0;
    // Parsing failed, so --json may not have been seen; a script that asked for JSON still
    // gets its one document.
    for (int i = 1; i < argc; ++i) {
      if (std::string(argv[i]) == "--json") ctx.out->set_json(true);
    }
    if (ctx.out->json()) {
      ctx.out->json_document({{"error",
                               {{"what", "invalid command line"},
                                {"why", e.what()},
                                {"fix", "run `qforge --help`"},
                                {"code", "INVALID_ARGUMENT"},
                                {"exit_code", static_cast<int>(ExitCode::kUsage)}}}});
    }
    return static_cast<int>(ExitCode::kUsage);
  }
  ctx.out->set_json(ctx.options.json);
  try {
    ctx.apply_log_level();
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
    // Not CLI11's require_subcommand: it would also swallow an unknown subcommand's name.
    throw usage_error("no subcommand given", "qforge needs one of: doctor, plugins",
                      "run `qforge --help` for the list");
  } catch (const Error& e) {
    ctx.out->error(e);
    return static_cast<int>(e.exit_code());
  } catch (const std::exception& e) {
    ctx.out->error(internal_error("qforge failed unexpectedly", e.what()));
    return static_cast<int>(ExitCode::kInternal);
  }
}

}  // namespace
}  // namespace qforge::cli

int main(int argc, char** argv) {
  // First, before any plugin can be loaded: the real stdout becomes private (output.hpp).
  qforge::cli::Output out(qforge::cli::contain_stdout());
  try {
    qforge::cli::CliContext ctx;
    ctx.out = &out;
    return qforge::cli::run(argc, argv, ctx);
  } catch (...) {
    // Only setting up the parser can get here (e.g. out of memory); run() catches the rest.
    std::fputs("qforge: internal error before any command ran\n", stderr);
    return static_cast<int>(qforge::ExitCode::kInternal);
  }
}
