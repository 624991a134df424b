// Subcommand registration. Each subcommand is one file that adds itself to the CLI11 app and
// returns what to run when it was chosen; main() dispatches. Later issues add plan, quantize,
// verify, ... the same way.
#pragma once

#include <functional>

#include "context.hpp"

namespace CLI {
class App;
}  // namespace CLI

namespace qforge::cli {

struct Command {
  CLI::App* app = nullptr;   // the subcommand, for got_subcommand()
  std::function<int()> run;  // returns the process exit code; throws qforge::Error
};

Command add_doctor_command(CLI::App& parent, CliContext& ctx);    // doctor.cpp
Command add_plugins_command(CLI::App& parent, CliContext& ctx);   // plugins_cmd.cpp
Command add_plan_command(CLI::App& parent, CliContext& ctx);      // plan_cmd.cpp
Command add_quantize_command(CLI::App& parent, CliContext& ctx);  // quantize_cmd.cpp
Command add_inspect_command(CLI::App& parent, CliContext& ctx);   // inspect_cmd.cpp
Command add_bench_command(CLI::App& parent, CliContext& ctx);     // bench_cmd.cpp
Command add_verify_command(CLI::App& parent, CliContext& ctx);    // verify_cmd.cpp
Command add_convert_command(CLI::App& parent, CliContext& ctx);   // convert_cmd.cpp
Command add_generate_command(CLI::App& parent, CliContext& ctx);  // generate_cmd.cpp
Command add_eval_command(CLI::App& parent, CliContext& ctx);      // eval_cmd.cpp

}  // namespace qforge::cli
