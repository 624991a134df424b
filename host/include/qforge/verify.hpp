// `qforge verify ORIG QUANT`: is a quantized checkpoint right? Static checks on the files, then
// output quality against the original on the same inputs, each a pass/fail with its figure.
//
//   footprint     (a) bytes of QUANT / bytes of ORIG, total and per module (informational
//                     figure; fails only when QUANT is not smaller than ORIG)
//   layer_types   (b) every module the plan targets carries its method's tensor set
//                     (check_quantized passes) and every other module is byte-identical to ORIG
//   dtypes        (c) each quantized module's stored dtypes/shapes equal describe_quantized
//   config        (d) quantization_config present, resolved as valid for its method, and
//                     unchanged by a JSON dump -> parse round trip
//   round_trip    (e) QUANT loaded and written again (checkpoint writer) has identical tensor
//                     bytes, names, dtypes and shapes
//   logit_cosine, kl, top1, ppl_delta, generation   (f) the runtime on ORIG and QUANT, same
//                     inputs: mean cosine of logits, mean KL(ORIG || QUANT), top-1 agreement,
//                     perplexity delta (relative), greedy-generation agreement over N tokens.
//                     Encoders: embedding cosine instead of the LM figures.
//
//   reconstruction    per quantized module: ||W - dequant(Q)||_F / ||W||_F (the plugin's
//                     dequantize against ORIG's weight); the largest must stay under the
//                     threshold, and the failing module is named.
//
// Thresholds are per method: defaults in the host, overridden by the method's manifest
// (`verify:` block) and then by the user (`--threshold name=value`). docs/verify.md lists them.
//
// Library split: (a)-(e) and every figure are computed in libqforge, which stays LibTorch-free.
// (f) needs models that run; verify reaches them only through the OutputModel seam below, and
// `runtime_model_loader()` (qforge/verify_runtime.hpp, inline) adapts qforge::runtime::Model to
// it. Only a program that includes that header links the `qforge::runtime` library; no
// libqforge source includes it (GCC would speculatively devirtualize OutputModel calls into the
// adapter and pull runtime symbols into libqforge).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/error.hpp"
#include "qforge/host.hpp"
#include "qforge/runtime.hpp"

namespace qforge {

// A loaded model as (f) sees it. Not thread-safe; one instance per checkpoint.
class OutputModel {
 public:
  virtual ~OutputModel() = default;
  virtual bool causal_lm() const = 0;  // false: an encoder (embedding checks instead)
  virtual int64_t vocab_size() const = 0;
  // Causal LM: logits [B, T, vocab]. Encoder: the pooled embedding [B, 1, hidden].
  virtual Result<runtime::Activations> forward(const runtime::TokenBatch& ids) = 0;
  // Causal LM only: greedy continuation of `prompt`, `new_tokens` ids.
  virtual Result<std::vector<int64_t>> generate(const std::vector<int64_t>& prompt,
                                                int64_t new_tokens) = 0;
};

// Loads a checkpoint for (f). When ORIG cannot be loaded (e.g. an architecture the runtime does
// not run) the (f) checks are skipped with that reason; when ORIG loads and QUANT does not, they
// fail.
using ModelLoader =
    std::function<Result<std::unique_ptr<OutputModel>>(Host& host, const Checkpoint& checkpoint)>;

struct VerifyOptions {
  std::vector<std::filesystem::path> architecture_dirs;  // empty: default_architecture_dirs()
  // Inputs for (f). Empty: deterministic sequences drawn from the vocabulary (seeded), enough
  // to make the figures stable; documented in docs/verify.md.
  std::vector<std::vector<int64_t>> inputs;
  int64_t generate_tokens = 32;
  int num_threads = 0;
  bool outputs = true;                       // run (f); false: static checks only
  bool allow_emulation = false;              // PlanRequest::allow_emulation, for (d)'s plan
  std::map<std::string, double> thresholds;  // user overrides by check id
  // How (f) gets its models; empty: the (f) checks are reported as skipped, "runtime
  // unavailable" (never as passed). The CLI passes runtime_model_loader()
  // (qforge/verify_runtime.hpp).
  ModelLoader load_model;
};

// Check ids that take a threshold, in report order, and the host's defaults for a method
// (before the manifest's `verify:` block and the user's overrides).
const std::vector<std::string>& threshold_check_ids();
std::map<std::string, double> default_thresholds(const std::string& quant_method);

enum class CheckOutcome { kPass, kFail, kSkipped };
const char* check_outcome_name(CheckOutcome outcome) noexcept;  // "pass", "fail", "skipped"

struct VerifyCheck {
  std::string id;     // "footprint", "layer_types", ..., "generation"
  std::string title;  // one line a person reads
  CheckOutcome outcome = CheckOutcome::kSkipped;
  std::optional<double> figure;
  std::optional<double> threshold;
  std::string comparison;  // ">=", "<=" (how figure is held against threshold)
  std::string detail;      // why it failed / was skipped; the offending module and tensor
};

struct ModuleFigures {
  std::string name;
  uint64_t bytes_before = 0, bytes_after = 0;
  // Weight reconstruction error of a quantized module: ||W - dequant(Q)||_F / ||W||_F.
  std::optional<double> relative_error;
};

struct VerifyReport {
  std::string quant_method;
  std::string plugin_id;
  std::vector<VerifyCheck> checks;
  std::vector<ModuleFigures> modules;
  bool passed() const;  // no check failed
  nlohmann::json to_json() const;
  // Markdown with a table of checks and a per-layer reconstruction-error plot; the plot is
  // written as SVG next to the report (`plot_file`), referenced by relative path.
  std::string to_markdown(const std::filesystem::path& plot_file) const;
  std::string plot_svg() const;
};

// Fails (Error) only when the comparison cannot start: unreadable checkpoints, QUANT without a
// method a plugin serves. Everything wrong with QUANT is a failed check in the report.
Result<VerifyReport> verify_checkpoints(Host& host, const Checkpoint& original,
                                        const Checkpoint& quantized, const VerifyOptions& options);

}  // namespace qforge
