// run_quantize: streams the plan module by module into a CheckpointWriter. Weights are read
// from the input mapping only when their module comes up, and each output tensor goes straight
// to its offset in the output shard, so memory holds about one module's outputs at a time.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <set>

#include "pipeline/pipeline_internal.hpp"
#include "qforge/logging.hpp"

namespace qforge {
namespace {

// Current resident set of this process (/proc/self/statm, second field, in pages); 0 if unknown.
uint64_t current_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

Status cancelled_error() {
  return Error(ErrorCode::kCancelled, ExitCode::kInternal, "quantization cancelled",
               "the run was asked to stop; nothing was written under the output name", "");
}

// The module's tensor named `full_name` as the plugin sees it: relative to the module.
std::string relative_name(const std::string& module, const std::string& full_name) {
  return full_name.substr(module.size() + 1);
}

Status copy_tensor(const Checkpoint& checkpoint, CheckpointWriter& writer, const std::string& name,
                   const QuantizeOptions& options) {
  if (options.rewritten != nullptr) {
    const auto it = options.rewritten->find(name);
    if (it != options.rewritten->end()) {
      return writer.write(name, it->second.data(), it->second.nbytes());
    }
  }
  auto view = checkpoint.view(name);
  if (!view.ok()) return view.error();
  return writer.write(name, view.value());
}

// A calibrated pass's outputs for `module`, handed over (and released) once.
std::optional<std::vector<NamedTensor>> take_precomputed(const QuantizeOptions& options,
                                                         const std::string& module) {
  if (options.precomputed == nullptr) return std::nullopt;
  auto it = options.precomputed->find(module);
  if (it == options.precomputed->end()) return std::nullopt;
  std::vector<NamedTensor> outputs = std::move(it->second);
  options.precomputed->erase(it);
  return outputs;
}

Status quantize_module(const Plan& plan, const PlannedModule& pm, const Checkpoint& checkpoint,
                       CheckpointWriter& writer, const QuantizeOptions& options) {
  const ModuleEntry& module = pm.module;
  std::vector<NamedTensor> outputs;
  if (auto ready = take_precomputed(options, module.name)) {
    outputs = std::move(*ready);
  } else {
    auto quantized = pipeline::quantize_planned_module(plan, pm, checkpoint, options.threads);
    if (!quantized.ok()) return quantized.error();
    outputs = std::move(quantized).value();
  }
  std::set<std::string> produced;
  for (const auto& t : outputs) {
    const std::string full = module.name + "." + t.name;
    QF_RETURN_IF_ERROR(writer.write(full, t.tensor.data(), t.tensor.nbytes()));
    produced.insert(full);
  }
  // The plan carries over every other tensor of the module (bias, buffers) unless the plugin
  // produced it itself.
  for (const auto& out : pm.outputs) {
    if (produced.count(out.name) != 0) continue;
    if (checkpoint.find(out.name) == nullptr) {
      return plugin_error("quantize of " + module.name + " did not produce '" +
                              relative_name(module.name, out.name) + "'",
                          "describe_quantized announced it", "report to the plugin vendor");
    }
    QF_RETURN_IF_ERROR(copy_tensor(checkpoint, writer, out.name, options));
  }
  return ok_status();
}

}  // namespace

namespace pipeline {

Result<std::vector<NamedTensor>> quantize_planned_module(
    const Plan& plan, const PlannedModule& pm, const Checkpoint& checkpoint, int threads,
    const std::vector<NamedView>* calibration) {
  const ModuleEntry& module = pm.module;
  auto weight = checkpoint.view(*module.weight);
  if (!weight.ok()) return weight.error();
  std::optional<TensorView> bias;
  if (module.bias) {
    auto b = checkpoint.view(*module.bias);
    if (!b.ok()) return b.error();
    bias = std::move(b).value();
  }
  return plan.quantizer->quantize(pm.info, weight.value(), bias ? &*bias : nullptr, threads,
                                  calibration);
}

}  // namespace pipeline

Result<QuantizeSummary> run_quantize(const Plan& plan, const Checkpoint& checkpoint,
                                     const QuantizeOptions& options) {
  auto log = get_logger("quantize");
  if (plan.nothing_to_do || plan.quantizer == nullptr) {
    return usage_error("nothing to quantize", plan.note.empty() ? "the plan is empty" : plan.note,
                       "pass --method or a config with a quant_method");
  }
  const auto start = std::chrono::steady_clock::now();
  const uint64_t start_rss = current_rss_bytes();
  auto created = CheckpointWriter::create(options.out_dir, plan.layout, options.writer);
  if (!created.ok()) return created.error();
  CheckpointWriter& writer = *created.value();

  Progress progress;
  progress.modules_total = plan.modules.size() + (plan.loose_tensors.empty() ? 0 : 1);
  for (const auto& pm : plan.modules) progress.bytes_total += pm.bytes_before;
  const auto is_cancelled = [&] {
    return options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed);
  };

  for (const auto& pm : plan.modules) {
    if (is_cancelled()) return cancelled_error();
    if (pm.action == ModuleAction::kQuantize) {
      QF_RETURN_IF_ERROR(quantize_module(plan, pm, checkpoint, writer, options));
    } else {
      for (const auto& name : pm.module.tensors) {
        QF_RETURN_IF_ERROR(copy_tensor(checkpoint, writer, name, options));
      }
    }
    // Done with this module's input: without this, every mapped page read so far stays in
    // our resident set and peak RSS grows to the size of the model.
    for (const auto& name : pm.module.tensors) checkpoint.release(name);
    ++progress.modules_done;
    progress.bytes_done += pm.bytes_before;
    progress.current = pm.module.name;
    if (options.progress) options.progress(progress);
  }
  for (const auto& name : plan.loose_tensors) {
    if (is_cancelled()) return cancelled_error();
    QF_RETURN_IF_ERROR(copy_tensor(checkpoint, writer, name, options));
  }
  if (!plan.loose_tensors.empty()) {
    ++progress.modules_done;
    progress.current = "other tensors";
    if (options.progress) options.progress(progress);
  }

  QF_RETURN_IF_ERROR(writer.add_file("config.json", dump_config_json(plan.output_config)));
  for (const auto& path : checkpoint.companion_files()) {
    QF_RETURN_IF_ERROR(writer.copy_file(path, path.filename().string()));
  }
  if (is_cancelled()) return cancelled_error();
  auto written = writer.commit();
  if (!written.ok()) return written.error();

  QuantizeSummary summary;
  summary.start_rss_bytes = start_rss;
  summary.written = std::move(written).value();
  summary.quantized = plan.quantized;
  summary.kept = plan.kept;
  summary.bytes_before = plan.bytes_before;
  summary.bytes_after = plan.bytes_after;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    summary.peak_rss_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux: KiB
  }
  log->info("wrote {} ({} shards) in {:.2f} s", options.out_dir.string(), summary.written.shards,
            summary.seconds);
  return summary;
}

}  // namespace qforge
