// activation_scaling_consumer.hpp. The order is AutoAWQ's (AwqQuantizer.quantize): every
// group's scales are searched on the original block, then all are applied, then the clip search
// runs on the scaled weights with the scaled inputs, then the weights are quantized. Weights
// here are float32 copies; the network of the pass keeps the original parametrisation, so what
// is installed there is the quantized weight with the scales undone, diag(r)·Q(W')·diag(1/c),
// which computes exactly what the written (scaled) checkpoint computes.
#include "runtime/activation_scaling_consumer.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "convert/half.hpp"
#include "qforge/logging.hpp"
#include "runtime/activation_scaling.hpp"
#include "runtime/calibration_internal.hpp"
#include "verify/figures.hpp"

namespace qforge::detail {
namespace {

using runtime::BlockHandle;
using runtime::BlockNorm;
using runtime::BlockPart;
using runtime::LinearStats;
using runtime::Replacements;
using runtime::scaling::ScalingGroup;

at::Tensor to_tensor(const runtime::Matrix& m) {
  return at::from_blob(const_cast<float*>(m.data.data()), {m.rows, m.cols},
                       at::TensorOptions(at::kFloat))
      .clone();
}

at::Tensor to_tensor(const std::vector<float>& v) {
  return at::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())},
                       at::TensorOptions(at::kFloat))
      .clone();
}

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

TensorView view_of(const at::Tensor& contiguous_float) {
  std::vector<int64_t> shape(contiguous_float.sizes().begin(), contiguous_float.sizes().end());
  return TensorView(DLDataType{kDLFloat, 32, 1}, std::move(shape), contiguous_float.data_ptr());
}

// `t` stored as `dtype` (the checkpoint tensor's own: F32, F16 or BF16).
Tensor to_stored(const at::Tensor& t, DLDataType dtype, const std::string& name) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  std::vector<int64_t> shape(c.sizes().begin(), c.sizes().end());
  auto out = Tensor::zeros(dtype, shape);
  if (!out.ok()) throw out.error();
  const float* src = c.data_ptr<float>();
  const auto n = static_cast<size_t>(c.numel());
  if (dtype.code == kDLFloat && dtype.bits == 32) {
    std::memcpy(out.value().data(), src, n * sizeof(float));
  } else if (dtype.bits == 16 && (dtype.code == kDLFloat || dtype.code == kDLBfloat)) {
    auto* dst = out.value().data_as<uint16_t>();
    for (size_t i = 0; i < n; ++i) {
      dst[i] = dtype.code == kDLBfloat ? float_to_bf16(src[i]) : float_to_half(src[i]);
    }
  } else {
    throw bad_input(
        "cannot fold activation scales into '" + name + "'",
        "it is stored as " + dtype_to_string(dtype) + "; folding writes F32, F16 or BF16 tensors",
        "convert the checkpoint to a float dtype first");
  }
  return std::move(out).value();
}

bool avoids_clipping(const std::string& module) {
  // AutoAWQ skips q/k: their errors are squashed by the softmax, and clipping hurts there.
  const std::string leaf = module.substr(module.rfind('.') + 1);
  return leaf == "q_proj" || leaf == "k_proj";
}

int64_t group_size_of(const Plan& plan) {
  for (const nlohmann::json* j : {&plan.quantization_config, &plan.config.config}) {
    if (j->is_object()) {
      for (const char* key : {"group_size", "q_group_size"}) {
        if (j->contains(key) && (*j)[key].is_number_integer()) return (*j)[key].get<int64_t>();
      }
    }
  }
  return -1;
}

// AutoAWQ's AwqQuantizer flags duo_scaling and apply_clip, both true by default.
bool flag_of(const Plan& plan, const char* key) {
  const nlohmann::json& j = plan.config.config;
  if (j.is_object() && j.contains(key) && j[key].is_boolean()) return j[key].get<bool>();
  return true;
}

}  // namespace

class ActivationScalingConsumer::Impl {
 public:
  Impl(const Plan& plan, const Checkpoint& checkpoint, const QuantizeOptions& options,
       const CalibratedQuantizeOptions& calibrated, ScaledOutputs& outputs)
      : plan_(plan),
        checkpoint_(checkpoint),
        threads_(options.threads),
        cancel_(options.cancel),
        report_(calibrated.on_scaling_group),
        outputs_(outputs),
        group_size_(group_size_of(plan)),
        duo_scaling_(flag_of(plan, "duo_scaling")),
        apply_clip_(flag_of(plan, "apply_clip")) {
    for (const auto& pm : plan.modules) {
      if (pm.action == ModuleAction::kQuantize) planned_[pm.module.name] = &pm;
    }
  }

  Replacements on_group(BlockHandle& block, std::vector<LinearStats>& stats) {
    if (cancel_ != nullptr && cancel_->load(std::memory_order_relaxed)) {
      throw Error(ErrorCode::kCancelled, ExitCode::kInternal, "quantization cancelled",
                  "the run was asked to stop during calibration; nothing was written", "");
    }
    for (LinearStats& s : stats) stats_[s.module] = std::move(s);
    const auto linears = block.linears();
    for (const auto& name : linears) {
      if (stats_.count(name) == 0) return {};  // the block's later groups are still to come
    }
    Replacements replaced = process_block(block, linears);
    stats_.clear();
    return replaced;
  }

  int quantized = 0;

 private:
  bool planned(const std::string& module) const { return planned_.count(module) != 0; }

  // The plugin's quantize, then its dequantize: the method's own rounding of `w`.
  std::vector<NamedTensor> quantize(const std::string& module, const at::Tensor& w,
                                    const at::Tensor& scales) const {
    const PlannedModule& pm = *planned_.at(module);
    const at::Tensor weight = w.to(at::kFloat).contiguous();
    const at::Tensor s = scales.to(at::kFloat).contiguous();
    const std::vector<float>& mean = stats_.at(module).mean_abs;
    const std::vector<NamedView> calibration{
        {"activation_scales", view_of(s)},
        {"input_abs_mean", TensorView(DLDataType{kDLFloat, 32, 1},
                                      {static_cast<int64_t>(mean.size())}, mean.data())}};
    std::optional<TensorView> bias;
    if (pm.module.bias) {
      auto b = checkpoint_.view(*pm.module.bias);
      if (!b.ok()) throw b.error();
      bias = std::move(b).value();
    }
    auto out = plan_.quantizer->quantize(pm.info, view_of(weight), bias ? &*bias : nullptr,
                                         threads_, &calibration);
    if (!out.ok()) throw out.error();
    return std::move(out).value();
  }

  at::Tensor dequantize(const std::string& module, const std::vector<NamedTensor>& q) const {
    const PlannedModule& pm = *planned_.at(module);
    auto dense = plan_.quantizer->dequantize(pm.info, views_of(q), threads_);
    if (!dense.ok()) throw dense.error();
    for (const auto& t : dense.value()) {
      if (t.name != "weight") continue;
      auto floats = verify::to_float32(TensorView::of(t.tensor), module + " (dequantized)");
      if (!floats.ok()) throw floats.error();
      return to_tensor(floats.value()).reshape({pm.info.out_features, pm.info.in_features});
    }
    throw plugin_error("dequantize of " + module + " returned no 'weight'",
                       "the host rebuilds the dense weight to search AWQ's scales",
                       "report to the plugin vendor");
  }

  at::Tensor pseudo_quantize(const std::string& module, const at::Tensor& w,
                             const at::Tensor& scales) const {
    return dequantize(module, quantize(module, w, scales));
  }

  // The block's groups with at least one planned linear; its norms' names by the family's.
  std::vector<ScalingGroup> scaling_groups(const BlockHandle& block,
                                           const std::vector<std::string>& l,
                                           const std::map<std::string, at::Tensor>& t) const {
    const std::string prefix = l[0].substr(0, l[0].rfind(".self_attn."));
    const std::string input_norm = prefix + ".input_layernorm.weight";
    const std::string post_norm = prefix + ".post_attention_layernorm.weight";
    for (const auto& name : {input_norm, post_norm}) {
      if (checkpoint_.find(name) == nullptr) {
        throw bad_input("block " + std::to_string(block.index()) + " has no '" + name + "'",
                        "AWQ folds its scales into the norm before q/k/v and gate/up, found by "
                        "the Llama family's names",
                        "use a Llama-family checkpoint with the usual tensor names");
      }
    }
    const bool v_feeds_o = t.at(l[2] + ".weight").sizes() == t.at(l[3] + ".weight").sizes();
    std::vector<ScalingGroup> searched;
    for (auto& g : runtime::scaling::llama_scaling_groups(l, input_norm, post_norm, v_feeds_o)) {
      if (std::any_of(g.members.begin(), g.members.end(),
                      [&](const std::string& m) { return planned(m); })) {
        searched.push_back(std::move(g));
      }
    }
    return searched;
  }

  bool can_clip(const std::string& module) const {
    return planned(module) && !avoids_clipping(module) && stats_.at(module).sample.rows > 0;
  }

  // A unit's quantized tensors and, for the pass, its weights with the scales undone.
  struct UnitWeights {
    std::map<std::string, std::vector<NamedTensor>> packed;
    Replacements effective;
  };

  // Quantizes the members' scaled weights, clipped first by the clip search (on the inputs
  // they now see, x / s) when `clip` is set.
  UnitWeights quantize_unit(const std::vector<std::string>& members,
                            const std::map<std::string, at::Tensor>& t,
                            const std::map<std::string, at::Tensor>& col,
                            const std::map<std::string, at::Tensor>& row, bool clip) const {
    UnitWeights u;
    for (const auto& name : members) {
      at::Tensor w = t.at(name + ".weight");
      const at::Tensor s = col.count(name) ? col.at(name) : at::ones({w.size(1)});
      if (clip && can_clip(name)) {
        const at::Tensor x = to_tensor(stats_.at(name).sample) / s.unsqueeze(0);
        const at::Tensor bound = runtime::scaling::search_clip(
            w, x, group_size_,
            [&](const at::Tensor& clipped) { return pseudo_quantize(name, clipped, s); });
        w = runtime::scaling::apply_clip(w, bound, group_size_);
      }
      std::vector<NamedTensor> q = quantize(name, w, s);
      at::Tensor effective = dequantize(name, q) / s.unsqueeze(0);
      if (row.count(name)) effective = effective * row.at(name).unsqueeze(1);
      u.effective[name] = to_vector(effective);
      u.packed[name] = std::move(q);
    }
    return u;
  }

  at::Tensor run(BlockHandle& block, const ScalingGroup& g, const Replacements& overrides) const {
    auto out = block.run(g.part, overrides, g.inspect);
    if (!out.ok()) throw out.error();
    return to_tensor(out.value());
  }

  // The grid search of one group: the scales with the smallest block output error.
  at::Tensor search_scales(BlockHandle& block, const ScalingGroup& g,
                           const std::map<std::string, at::Tensor>& t, const at::Tensor& fp,
                           ScalingSearch& report) const {
    std::vector<at::Tensor> stacked;
    for (const auto& m : g.members) stacked.push_back(t.at(m + ".weight"));
    const at::Tensor w_mean =
        runtime::scaling::weight_channel_mean(at::cat(stacked, 0), group_size_);
    const at::Tensor x_mean = to_tensor(stats_.at(g.members.front()).mean_abs);
    const at::Tensor ones = at::ones_like(x_mean);

    Replacements rtn;
    for (const auto& m : g.members) {
      if (planned(m)) rtn[m] = to_vector(pseudo_quantize(m, t.at(m + ".weight"), ones));
    }
    report.error_round_to_nearest = runtime::scaling::mean_squared_error(fp, run(block, g, rtn));

    at::Tensor best;
    double best_error = 0;
    for (int64_t i = 0; i < runtime::scaling::kGrid; ++i) {
      const double ratio = static_cast<double>(i) / runtime::scaling::kGrid;
      const at::Tensor s = runtime::scaling::candidate_scales(x_mean, w_mean, ratio, duo_scaling_);
      Replacements candidate;
      for (const auto& m : g.members) {
        if (planned(m))
          candidate[m] = to_vector(pseudo_quantize(m, t.at(m + ".weight") * s, s) / s);
      }
      const double error = runtime::scaling::mean_squared_error(fp, run(block, g, candidate));
      if (!best.defined() || error < best_error) {
        best = s;
        best_error = error;
        report.ratio = ratio;
      }
    }
    report.error_scaled = best_error;
    return best;
  }

  Replacements process_block(BlockHandle& block, const std::vector<std::string>& l) {
    auto log = get_logger("awq");
    // float32 working copies by tensor name: "<linear>.weight" [out, in], "<linear>.bias", norms.
    std::map<std::string, at::Tensor> t;
    for (const auto& name : l) {
      t[name + ".weight"] = to_tensor(block.weight(name));
      const std::vector<float> b = block.bias(name);
      if (!b.empty()) t[name + ".bias"] = to_tensor(b);
    }
    const auto groups = scaling_groups(block, l, t);
    if (groups.empty()) return {};
    for (const auto& g : groups) {
      if (g.previous_is_norm) t[g.previous] = to_tensor(block.norm(g.norm));
    }
    const std::map<std::string, at::Tensor> original = t;

    // 1. every group's scales, on the original block.
    std::vector<at::Tensor> scales;
    std::vector<ScalingSearch> reports;
    std::vector<at::Tensor> fp_outputs;
    for (const auto& g : groups) {
      ScalingSearch report;
      report.block = block.index();
      report.previous = g.previous;
      report.modules = g.members;
      fp_outputs.push_back(run(block, g, {}));
      scales.push_back(search_scales(block, g, original, fp_outputs.back(), report));
      reports.push_back(std::move(report));
    }

    // 2. fold. col: what each linear's inputs are scaled by; row: what its outputs are divided by.
    std::map<std::string, at::Tensor> col, row;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const ScalingGroup& g = groups[gi];
      const at::Tensor& s = scales[gi];
      runtime::scaling::fold_scales(g, s, t);
      for (const auto& m : g.members) col[m] = col.count(m) ? col[m] * s : s;
      if (!g.previous_is_norm) row[g.previous] = row.count(g.previous) ? row[g.previous] * s : s;
    }

    // 3-4. Clip and quantize, unit by unit: a group's planned members together, a planned linear
    // outside every group (o_proj under grouped-query attention) alone. The clip search judges
    // each (row, group) by that linear's own output on <= 512 sampled tokens, which can disagree
    // with the output of the part it feeds (SmolLM2 block 2 MLP: 0.0101 scaled, 0.0242 clipped,
    // where the clipped gate/up lose on the few tokens with massive activations), so clipping
    // is kept only where it lowers the part's output error.
    struct Unit {
      ScalingGroup part;
      std::vector<std::string> members;  // the planned ones
      int report = -1;                   // index into reports; -1: not a scaling group
      at::Tensor fp;
    };
    std::vector<Unit> units;
    std::set<std::string> grouped;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      Unit u{groups[gi], {}, static_cast<int>(gi), fp_outputs[gi]};
      for (const auto& m : groups[gi].members) {
        grouped.insert(m);
        if (planned(m)) u.members.push_back(m);
      }
      units.push_back(std::move(u));
    }
    for (const auto& name : l) {
      if (!planned(name) || grouped.count(name) != 0) continue;
      ScalingGroup alone;
      alone.part = BlockPart::kLinear;
      alone.inspect = name;
      alone.members = {name};
      at::Tensor fp = run(block, alone, {});
      units.push_back({std::move(alone), {name}, -1, std::move(fp)});
    }
    Replacements replaced;
    for (const Unit& u : units) {
      UnitWeights chosen = quantize_unit(u.members, t, col, row, false);
      double error =
          runtime::scaling::mean_squared_error(u.fp, run(block, u.part, chosen.effective));
      bool clipped = false;
      const bool clippable = std::any_of(u.members.begin(), u.members.end(),
                                         [&](const std::string& m) { return can_clip(m); });
      if (apply_clip_ && clippable) {
        UnitWeights with_clip = quantize_unit(u.members, t, col, row, true);
        const double clipped_error =
            runtime::scaling::mean_squared_error(u.fp, run(block, u.part, with_clip.effective));
        if (clipped_error < error) {
          chosen = std::move(with_clip);
          error = clipped_error;
          clipped = true;
        }
      }
      for (const auto& m : u.members) {
        replaced[m] = std::move(chosen.effective[m]);
        outputs_.quantized[m] = std::move(chosen.packed[m]);
        ++quantized;
      }
      if (u.report >= 0) {
        reports[static_cast<size_t>(u.report)].error_final = error;
        reports[static_cast<size_t>(u.report)].clipped = clipped;
      }
    }
    // Every other tensor the fold changed (norms, biases, kept linears) is written as folded.
    for (const auto& [name, value] : t) {
      const std::string module = name.substr(0, name.rfind('.'));
      const bool quantized_weight = planned(module) && name == module + ".weight";
      if (!quantized_weight && !at::equal(value, original.at(name))) rewrite(name, value);
    }

    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const ScalingSearch& r = reports[gi];
      if (log->should_log(spdlog::level::debug)) {
        log->debug(
            "block {} {} -> {}: ratio {:.2f}, s in [{:.3g}, {:.3g}], output error {:.3g} "
            "(round to nearest) -> {:.3g} (scaled) -> {:.3g} (written, {})",
            r.block, r.previous, fmt::join(r.modules, ", "), r.ratio,
            scales[gi].min().item<float>(), scales[gi].max().item<float>(),
            r.error_round_to_nearest, r.error_scaled, r.error_final,
            r.clipped ? "clipped" : "not clipped");
      }
      if (report_) report_(r);
    }
    return replaced;
  }

  void rewrite(const std::string& name, const at::Tensor& value) {
    auto stored = checkpoint_.view(name);
    if (!stored.ok()) throw stored.error();
    outputs_.rewritten[name] = to_stored(value, stored.value().dtype(), name);
  }

  const Plan& plan_;
  const Checkpoint& checkpoint_;
  int threads_;
  const std::atomic<bool>* cancel_;
  std::function<void(const ScalingSearch&)> report_;
  ScaledOutputs& outputs_;
  int64_t group_size_;
  bool duo_scaling_;
  bool apply_clip_;
  std::map<std::string, const PlannedModule*> planned_;
  std::map<std::string, LinearStats> stats_;
};

ActivationScalingConsumer::ActivationScalingConsumer(const Plan& plan, const Checkpoint& checkpoint,
                                                     const QuantizeOptions& options,
                                                     const CalibratedQuantizeOptions& calibrated,
                                                     ScaledOutputs& outputs)
    : impl_(std::make_unique<Impl>(plan, checkpoint, options, calibrated, outputs)) {}

ActivationScalingConsumer::~ActivationScalingConsumer() = default;

Result<runtime::Replacements> ActivationScalingConsumer::on_group(
    runtime::BlockHandle& block, const runtime::LinearGroup& /*group*/,
    std::vector<runtime::LinearStats>& stats) {
  return runtime::detail::guarded<runtime::Replacements>(
      "AWQ's scale search", runtime::detail::kCalibrationOomFix,
      [&]() -> Result<runtime::Replacements> { return impl_->on_group(block, stats); });
}

int ActivationScalingConsumer::quantized() const noexcept { return impl_->quantized; }

void ActivationScalingConsumer::configure(runtime::CalibrationOptions& options) {
  options.hessian = runtime::HessianPrecision::kNone;
  options.mean_abs = true;
  options.max_sample_tokens = runtime::scaling::kClipTokens;
  options.true_sequential = false;
}

}  // namespace qforge::detail
