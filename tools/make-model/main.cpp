// qforge-make-model: writes a small deterministic Llama-shaped HuggingFace checkpoint for tests
// and the demo (docs/make-model.md). Exit codes follow the qforge CLI: 0 ok, 1 internal,
// 2 usage, 4 bad input (sizes, output folder).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>

#include "llama_model.hpp"
#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"

namespace {

int report(const qforge::Error& error) {
  std::fprintf(stderr, "qforge-make-model: error: %s\n", error.to_string().c_str());
  return static_cast<int>(error.exit_code());
}

int run(int argc, char** argv) {
  qforge::make_model::LlamaSpec spec;
  std::string out;
  std::string max_shard_size = "5GB";
  bool force = false;

  CLI::App app{
      "Write a small deterministic Llama-shaped HuggingFace checkpoint "
      "(config.json + safetensors)",
      "qforge-make-model"};
  // A later flag wins (tests append overrides to a base command line).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--out", out, "Output folder (created atomically)")->required()->type_name("DIR");
  app.add_option("--hidden", spec.hidden, "hidden_size")->capture_default_str();
  app.add_option("--intermediate", spec.intermediate, "intermediate_size")->capture_default_str();
  app.add_option("--layers", spec.layers, "num_hidden_layers")->capture_default_str();
  app.add_option("--heads", spec.heads, "num_attention_heads")->capture_default_str();
  app.add_option("--kv-heads", spec.kv_heads, "num_key_value_heads")->capture_default_str();
  app.add_option("--vocab", spec.vocab, "vocab_size")->capture_default_str();
  app.add_option("--dtype", spec.dtype, "Weight dtype: bf16, fp16 or fp32")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}))
      ->capture_default_str();
  app.add_option("--seed", spec.seed, "Seed of the weights")->capture_default_str();
  app.add_flag("--tie-embeddings", spec.tie_embeddings,
               "Tie lm_head to embed_tokens (no lm_head.weight is stored)");
  app.add_option("--max-shard-size", max_shard_size,
                 "Largest shard, transformers syntax (10MB, 5GB, 1GiB, bytes)")
      ->capture_default_str();
  app.add_flag("--force", force, "Replace an existing output folder");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help goes to stdout (exit 0); parse errors are usage errors (exit 2), as in `qforge`.
    return app.exit(e) == 0 ? 0 : static_cast<int>(qforge::ExitCode::kUsage);
  }

  auto shard = qforge::parse_shard_size(max_shard_size);
  if (!shard.ok()) return report(shard.error());
  qforge::WriterOptions options;
  options.max_shard_bytes = shard.value();
  options.overwrite = force;

  // Like `mkdir -p`: test scripts name nested scratch folders. The writer still checks the
  // folder itself (exists without --force, not writable, ...).
  const std::filesystem::path parent = std::filesystem::absolute(out).parent_path();
  std::error_code mkdir_error;
  std::filesystem::create_directories(parent, mkdir_error);
  if (mkdir_error) {
    return report(qforge::bad_input("cannot create the folder '" + parent.string() + "'",
                                    mkdir_error.message(),
                                    "check the --out path and its permissions"));
  }
  auto made = qforge::make_model::write_llama_checkpoint(spec, out, options);
  if (!made.ok()) return report(made.error());
  const auto& s = made.value();
  uint64_t file_bytes = 0;
  for (const auto& f : s.written.files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(f, ec);
    if (!ec) file_bytes += size;
  }
  std::printf(
      "qforge-make-model: wrote %s: %lld parameters, %.1f%% of them in linear layers (lm_head "
      "excluded), %s, %llu tensor bytes, %llu bytes in %d shard(s)%s\n",
      out.c_str(), static_cast<long long>(s.parameters), 100.0 * s.linear_fraction(),
      spec.dtype.c_str(), static_cast<unsigned long long>(s.written.tensor_bytes),
      static_cast<unsigned long long>(file_bytes), s.written.shards,
      spec.tie_embeddings ? ", tied embeddings" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const qforge::Error& e) {
    return report(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qforge-make-model: internal error: %s\n", e.what());
    return 1;
  }
}
