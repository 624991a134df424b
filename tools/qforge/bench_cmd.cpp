// `qforge bench quantize|dequantize|gemv|gptq|all --method M`: the speed ratios R1-R5 of
// PERFORMANCE.md, each against a reference measured in the same run (bench_figures.hpp).
// docs/bench.md says what every figure means and how to read it.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "bench_figures.hpp"
#include "bench_kernels.hpp"
#include "commands.hpp"

namespace qforge::cli {
namespace {

using bench::BenchOptions;
using bench::Figure;

struct BenchFlags {
  std::string what = "all";
  std::string method = "nf4";
  std::string plugin;
  std::vector<std::string> sets;
  std::string dtype = "bf16";
  int threads = 0;
  int reps = 7;
  int64_t size_mib = 256;
  int64_t weights_mib = 512;
  std::string shape = "4096x4096";
  std::vector<int64_t> batches{1, 2, 4, 8, 16};
  std::string gptq_shape = "4096x4096";
  int64_t calib_tokens = 16384;
  bool quick = false;
  // Options given on the command line win over --quick's small defaults.
  CLI::Option* reps_opt = nullptr;
  CLI::Option* size_opt = nullptr;
  CLI::Option* weights_opt = nullptr;
  CLI::Option* shape_opt = nullptr;
  CLI::Option* gptq_shape_opt = nullptr;
  CLI::Option* calib_opt = nullptr;
};

DLDataType parse_dtype(const std::string& text) {
  std::string name = text;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name == "bf16") name = "bfloat16";
  if (name == "fp16" || name == "f16") name = "float16";
  if (name == "fp32" || name == "f32") name = "float32";
  auto dtype = dtype_from_string(name);
  const bool is_float = dtype.ok() &&
                        (dtype.value().code == kDLFloat || dtype.value().code == kDLBfloat) &&
                        (dtype.value().bits == 16 || dtype.value().bits == 32);
  if (!is_float) {
    throw usage_error("--dtype '" + text + "' is not a dense weight dtype",
                      "quantizers take float32, float16 or bfloat16 weights",
                      "use --dtype bf16, fp16 or fp32");
  }
  return dtype.value();
}

void parse_shape(const std::string& text, int64_t* out, int64_t* in) {
  const size_t x = text.find_first_of("xX");
  try {
    size_t used_out = 0, used_in = 0;
    if (x != std::string::npos) {
      *out = std::stoll(text.substr(0, x), &used_out);
      *in = std::stoll(text.substr(x + 1), &used_in);
      if (used_out == x && used_in == text.size() - x - 1 && *out > 0 && *in > 0) return;
    }
  } catch (const std::exception&) {
  }
  throw usage_error("--shape '" + text + "' is not OUTxIN", "expected two positive integers",
                    "write e.g. --shape 4096x4096");
}

BenchOptions to_options(const BenchFlags& flags) {
  BenchOptions o;
  o.dtype = parse_dtype(flags.dtype);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.threads = flags.threads > 0 ? flags.threads : cores;
  const bool quick = flags.quick;
  o.reps = quick && flags.reps_opt->count() == 0 ? 3 : flags.reps;
  o.size_mib = quick && flags.size_opt->count() == 0 ? 4 : flags.size_mib;
  o.weights_mib = quick && flags.weights_opt->count() == 0 ? 4 : flags.weights_mib;
  parse_shape(quick && flags.shape_opt->count() == 0 ? "256x512" : flags.shape, &o.out_features,
              &o.in_features);
  o.cols = o.in_features;
  parse_shape(quick && flags.gptq_shape_opt->count() == 0 ? "256x512" : flags.gptq_shape,
              &o.gptq_out, &o.gptq_in);
  o.calib_tokens = quick && flags.calib_opt->count() == 0 ? 1024 : flags.calib_tokens;
  o.batches = flags.batches;
  for (int t : {1, 2, o.threads}) {
    if (std::find(o.gemv_threads.begin(), o.gemv_threads.end(), t) == o.gemv_threads.end()) {
      o.gemv_threads.push_back(t);
    }
  }
  std::sort(o.gemv_threads.begin(), o.gemv_threads.end());
  return o;
}

// Resolves --method like `quantize` does and prepares a quantizer for the CPU.
std::unique_ptr<Quantizer> make_quantizer(Host& host, const BenchFlags& flags) {
  ConfigRequest request;
  request.method = flags.method;
  for (const auto& s : flags.sets) request.overrides.push_back(parse_set_flag(s).value());
  const ResolvedConfig config = host.resolve(request).value();
  if (!config.quantize) {
    throw usage_error("--method '" + flags.method + "' gives nothing to quantize", config.note,
                      "pass a method, e.g. --method nf4");
  }
  SelectionRequest select;
  select.quant_method = config.quant_method;
  select.config = config.config;
  select.request = {{"pre_quantized", false},
                    {"dtype", nullptr},
                    {"device", "cpu"},
                    {"device_map", nullptr},
                    // The bench measures the CPU kernels as they are, emulated ones included.
                    {"allow_emulation", true}};
  if (!flags.plugin.empty()) select.pinned_plugin = flags.plugin;
  const Selection selection = host.select(select);
  if (!selection.ok()) throw selection.error();
  auto quantizer =
      host.create_quantizer(selection.plugin_id, config.quant_method, config.config).value();
  const Status valid =
      quantizer->validate_environment(host.environment().to_json(), select.request);
  if (!valid.ok()) throw valid.error();
  return quantizer;
}

// Methods whose quantize runs an iterative solver, with the config that switches it off, for
// measure_quantize_solver's R1 split; std::nullopt for every other method.
std::optional<nlohmann::json> solver_off_config(Quantizer& q) {
  if (q.quant_method() != "hqq") return std::nullopt;
  // hqq: the serialized quantization_config's weight_quant_params.optimize (one block, or one
  // per linear tag).
  nlohmann::json config = q.postprocess(nlohmann::json::object()).value();
  nlohmann::json& blocks = config["quant_config"];
  if (blocks.contains("weight_quant_params")) {
    blocks["weight_quant_params"]["optimize"] = false;
  } else {
    for (auto& [tag, block] : blocks.items()) block["weight_quant_params"]["optimize"] = false;
  }
  return config;
}

std::string figure_line(const Figure& f) {
  char label[64];
  char line[512];
  if (f.id == "R5") {
    std::snprintf(line, sizeof(line),
                  "%-3s %-18s %6.3f  [%5.3f .. %5.3f]  target >= %.2f %-5s  gptq %7.2f GFLOP/s, %s "
                  "%7.2f GFLOP/s\n",
                  f.id.c_str(), "gptq algorithm", f.ratio.median, f.ratio.min, f.ratio.max,
                  f.target, f.meets_target() ? "met" : "BELOW", f.candidate_gbps.median,
                  f.reference.c_str(), f.reference_gbps.median);
    return line;
  }
  if (f.id == "R4") {
    std::snprintf(label, sizeof(label), "fp32/quant b=%lld", static_cast<long long>(f.batch));
  } else if (f.id == "R3") {
    std::snprintf(label, sizeof(label), "gemv %d thread%s", f.threads, f.threads == 1 ? "" : "s");
  } else {
    std::snprintf(label, sizeof(label), "%s", f.name.c_str());
  }
  if (f.byte_ratio > 0) {
    std::snprintf(line, sizeof(line),
                  "%-3s %-18s %6.2fx [%5.2f .. %5.2f]  of %.2fx ideal = %.2f  target >= %.2f "
                  "%-5s  quant %6.2f GB/s, fp32 %6.2f GB/s\n",
                  f.id.c_str(), label, f.ratio.median, f.ratio.min, f.ratio.max, f.byte_ratio,
                  f.fraction.median, f.target, f.meets_target() ? "met" : "BELOW",
                  f.candidate_gbps.median, f.reference_gbps.median);
  } else {
    std::snprintf(line, sizeof(line),
                  "%-3s %-18s %6.3f  [%5.3f .. %5.3f]  target >= %.2f %-5s  %s %6.2f GB/s, %s "
                  "%6.2f GB/s\n",
                  f.id.c_str(), label, f.ratio.median, f.ratio.min, f.ratio.max, f.target,
                  f.meets_target() ? "met" : "BELOW", f.name.c_str(), f.candidate_gbps.median,
                  f.reference.c_str(), f.reference_gbps.median);
  }
  return line;
}

int run_bench(CliContext& ctx, const BenchFlags& flags) {
  const BenchOptions options = to_options(flags);
  Host host(ctx.host_options());
  const std::unique_ptr<Quantizer> quantizer = make_quantizer(host, flags);
  Quantizer& q = *quantizer;

  std::vector<Figure> figures;
  std::vector<Error> errors;
  // `all` measures what it can and reports the rest; a single figure group fails outright.
  const auto group = [&](const std::string& name, const auto& measure) {
    if (flags.what != name && flags.what != "all") return;
    try {
      measure();
    } catch (const Error& e) {
      if (flags.what != "all") throw;
      errors.push_back(e);
    }
  };
  group("quantize", [&] {
    figures.push_back(bench::measure_quantize(q, options));
    if (const auto off = solver_off_config(q)) {
      auto without = host.create_quantizer(q.plugin_id(), q.quant_method(), *off).value();
      for (auto& f : bench::measure_quantize_solver(q, *without, options)) {
        figures.push_back(std::move(f));
      }
    }
  });
  group("dequantize", [&] { figures.push_back(bench::measure_dequantize(q, options)); });
  group("gemv", [&] {
    for (auto& f : bench::measure_gemv(q, options)) figures.push_back(std::move(f));
  });
  // R5 is the GPTQ algorithm's figure: `all` runs it for gptq only.
  if (flags.what == "gptq" && q.quant_method() != "gptq") {
    throw usage_error("qforge bench gptq measures the GPTQ algorithm (R5)",
                      "--method '" + flags.method + "' resolves to '" + q.quant_method() + "'",
                      "pass --method gptq");
  }
  if (q.quant_method() == "gptq") {
    group("gptq", [&] { figures.push_back(bench::measure_gptq(q, options)); });
  }

  if (ctx.out->json()) {
    nlohmann::json list = nlohmann::json::array(), errs = nlohmann::json::array();
    for (const auto& f : figures) list.push_back(bench::figure_json(f));
    for (const auto& e : errors) {
      errs.push_back({{"what", e.summary()},
                      {"why", e.why()},
                      {"fix", e.fix()},
                      {"code", error_code_name(e.code())}});
    }
    ctx.out->json_document({{"bench", flags.what},
                            {"quick", flags.quick},
                            {"meaningful", !flags.quick},
                            {"method", flags.method},
                            {"quant_method", q.quant_method()},
                            {"plugin", q.plugin_id()},
                            {"dtype", dtype_to_string(options.dtype)},
                            {"threads", options.threads},
                            {"reps", options.reps},
                            {"reference_isa", bench::reference_isa()},
                            {"cpus", std::max(1u, std::thread::hardware_concurrency())},
                            {"figures", list},
                            {"errors", errs}});
  } else {
    std::string text = "qforge bench " + flags.what + ": " + q.quant_method() + " (plugin " +
                       q.plugin_id() + ", --method " + flags.method + "), weights " +
                       dtype_to_string(options.dtype) + ", " + std::to_string(options.threads) +
                       " threads, " + std::to_string(options.reps) +
                       " reps; ratios are median [min .. max] of per-rep ratios\n";
    if (flags.quick) text += "--quick: sizes too small to mean anything (smoke test only)\n";
    for (const auto& f : figures) text += figure_line(f);
    for (const auto& e : errors) text += "not measured: " + e.summary() + "\n";
    ctx.out->text(text);
  }
  for (const auto& e : errors) ctx.out->error(e);
  return errors.empty() ? 0 : static_cast<int>(errors.front().exit_code());
}

}  // namespace

Command add_bench_command(CLI::App& parent, CliContext& ctx) {
  CLI::App* cmd = parent.add_subcommand(
      "bench", "Speed ratios R1-R5 (quantize, dequantize, GEMV, GPTQ) against same-run references");
  auto flags = std::make_shared<BenchFlags>();
  // WHAT is a subcommand of bench, not a positional: as a positional, `quantize` would be
  // taken for the top-level `qforge quantize`. Its flags fall through to bench.
  std::vector<CLI::App*> whats;
  for (const auto& [name, help] :
       {std::pair<const char*, const char*>{"quantize", "R1: quantize vs memcpy"},
        {"dequantize", "R2: dequantize vs memcpy"},
        {"gemv", "R3: 4-bit GEMV vs streaming read; R4: dense fp32 GEMV vs 4-bit GEMV"},
        {"gptq", "R5: GPTQ algorithm on one layer vs the same-run fp32 GEMM (--method gptq)"},
        {"all", "R1-R4, and R5 for gptq (the default)"}}) {
    CLI::App* sub = cmd->add_subcommand(name, help);
    sub->fallthrough();
    whats.push_back(sub);
  }
  cmd->require_subcommand(0, 1);
  cmd->add_option("--method", flags->method, "quant_method, alias or preset (nf4, fp4, ...)")
      ->capture_default_str();
  cmd->add_option("--plugin", flags->plugin, "Use this plugin id; fail rather than fall back");
  cmd->add_option("--set", flags->sets, "Config override key=value (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->add_option("--dtype", flags->dtype, "Dense weight dtype: bf16, fp16 or fp32")
      ->capture_default_str();
  cmd->add_option("--threads", flags->threads, "Threads for candidate and reference (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  flags->reps_opt = cmd->add_option("--reps", flags->reps, "Timed repetitions of each side")
                        ->check(CLI::Range(1, 1000))
                        ->capture_default_str();
  flags->size_opt =
      cmd->add_option("--size-mib", flags->size_mib, "Dense weight size for R1/R2 (MiB)")
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
          ->capture_default_str();
  flags->weights_opt =
      cmd->add_option("--weights-mib", flags->weights_mib,
                      "Distinct weights per GEMV pass (MiB of 4-bit weights for R3/R4 and of "
                      "fp32 weights for R4's reference); keep well above the last-level cache")
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
          ->capture_default_str();
  flags->shape_opt =
      cmd->add_option("--shape", flags->shape, "One GEMV layer, OUTxIN (also R1/R2's row length)")
          ->capture_default_str();
  cmd->add_option("--batches", flags->batches, "R4 batch sizes (1..16)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{16}))
      ->capture_default_str();
  flags->gptq_shape_opt =
      cmd->add_option("--gptq-shape", flags->gptq_shape, "R5's layer, OUTxIN (gptq only)")
          ->capture_default_str();
  flags->calib_opt = cmd->add_option("--calib-tokens", flags->calib_tokens,
                                     "Calibration rows behind R5's Hessian (32 x 512)")
                         ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
                         ->capture_default_str();
  cmd->add_flag("--quick", flags->quick,
                "Tiny sizes and 3 reps for smoke tests; the figures mean nothing");
  return Command{cmd, [&ctx, flags, whats] {
                   for (const CLI::App* sub : whats) {
                     if (sub->parsed()) flags->what = sub->get_name();
                   }
                   return run_bench(ctx, *flags);
                 }};
}

}  // namespace qforge::cli
