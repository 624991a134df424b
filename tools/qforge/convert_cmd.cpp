// `qforge convert model.gguf -o DIR`: a llama.cpp GGUF (llama architecture) -> HF checkpoint
// folder (config.json + safetensors) in bf16 / fp16 / fp32 (docs/gguf-convert.md).
#include <CLI/CLI.hpp>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "output.hpp"
#include "qforge/convert.hpp"

namespace qforge::cli {
namespace {

struct ConvertFlags {
  std::string input;
  std::string output;
  std::string dtype = "bfloat16";
  bool force = false;
  std::string max_shard_size = "5GB";
};

int run_convert(CliContext& ctx, const ConvertFlags& flags) {
  ConvertOptions options;
  options.dtype = dtype_from_string(flags.dtype).value();
  options.overwrite = flags.force;
  options.max_shard_bytes = parse_shard_size(flags.max_shard_size).value();
  const ConvertSummary summary = convert_gguf_to_hf(flags.input, flags.output, options).value();
  std::map<std::string, int> by_type;
  for (const auto& [name, type] : summary.tensor_types) ++by_type[type];
  if (ctx.out->json()) {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : summary.written.files) files.push_back(f.string());
    ctx.out->json_document({{"output", flags.output},
                            {"dtype", flags.dtype},
                            {"tensors", summary.tensor_types.size()},
                            {"source_types", by_type},
                            {"tensor_bytes", summary.written.tensor_bytes},
                            {"files", files},
                            {"config", summary.config}});
    return 0;
  }
  std::ostringstream s;
  s << "Converted " << flags.input << " -> " << flags.output << " (" << flags.dtype << ")\n"
    << summary.tensor_types.size() << " tensors from";
  for (const auto& [type, n] : by_type) s << " " << n << " " << type;
  s << "; " << summary.written.tensor_bytes << " bytes in " << summary.written.shards
    << " shard(s)\n"
    << "hidden_size " << summary.config.value("hidden_size", 0) << ", layers "
    << summary.config.value("num_hidden_layers", 0) << ", vocab "
    << summary.config.value("vocab_size", 0) << ", tie_word_embeddings "
    << (summary.config.value("tie_word_embeddings", false) ? "true" : "false") << "\n";
  ctx.out->text(s.str());
  return 0;
}

}  // namespace

Command add_convert_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "convert", "Convert a llama.cpp GGUF (llama architecture) into an HF checkpoint folder");
  auto flags = std::make_shared<ConvertFlags>();
  cmd->add_option("GGUF", flags->input, "The .gguf file")->required();
  cmd->add_option("-o,--output", flags->output, "Output folder (config.json + safetensors)")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--dtype", flags->dtype, "Output dtype: bfloat16 (default), float16, float32")
      ->check(CLI::IsMember({"bfloat16", "float16", "float32", "BF16", "F16", "F32"}));
  cmd->add_flag("--force", flags->force, "Replace an existing output folder");
  cmd->add_option("--max-shard-size", flags->max_shard_size, "Shard size (default 5GB)");
  return Command{cmd, [&ctx, flags] { return run_convert(ctx, *flags); }};
}

}  // namespace qforge::cli
