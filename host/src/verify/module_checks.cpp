// (b) layer types, (c) dtypes and the per-module reconstruction error, module by module over
// the plan of ORIG under QUANT's config: a targeted module must hold exactly the tensors the
// method describes (and pass the plugin's check_quantized), every other tensor must be
// byte-identical to ORIG (kept tensors keep their stored dtype: docs/pipeline.md, dtype auto).
//
// Methods that fold activation scales (manifest `calibration: activation_scaling`, AWQ) rescale
// float tensors outside the quantized weights: norm weights divided by s, and a linear before a
// scaling group divided by s along its outputs. Those tensors may differ from ORIG, but only by
// positive factors (a sign change is no rescaling); whether the model still computes the same is
// what the logit checks measure. Their reconstruction error is that of the weight they quantized:
// ORIG's W with per-row and per-input-channel factors (fitted by least squares) against the
// dequantized one. Measuring against W itself would count the precision AWQ moves away from
// channels with small activations on purpose (SmolLM2 layer 0 q_proj: 0.63 against W, while the
// model's outputs are better than round-to-nearest's).
#include <cmath>
#include <cstring>
#include <set>

#include "verify/figures.hpp"
#include "verify/verify_internal.hpp"

namespace qforge::verify {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string tensor_text(DLDataType dtype, const std::vector<int64_t>& shape) {
  return dtype_to_string(dtype) + " " + shape_text(shape);
}

struct ModuleProblems {
  Problems& layer;
  Problems& dtypes;
  bool allow_rescaled = false;  // activation-scaling methods
  int rescaled = 0;             // kept tensors that differ from ORIG by positive factors
};

// True when every element of `changed` is `original` times a positive factor (zeros stay zero).
bool positively_rescaled(const std::vector<float>& original, const std::vector<float>& changed) {
  if (original.size() != changed.size()) return false;
  for (size_t i = 0; i < original.size(); ++i) {
    const float o = original[i], c = changed[i];
    if (!std::isfinite(c)) return false;
    if (o == 0.0f ? c != 0.0f : (o > 0.0f) != (c > 0.0f)) return false;
  }
  return true;
}

// diag(a)·W·diag(b) for the positive diagonal scales that best map W [rows, cols] onto
// `approximation`, fitted by alternating least squares.
std::vector<float> fit_channel_scales(const std::vector<float>& w,
                                      const std::vector<float>& approximation, int64_t rows,
                                      int64_t cols) {
  std::vector<double> a(static_cast<size_t>(rows), 1.0), b(static_cast<size_t>(cols), 1.0);
  auto at = [&](const std::vector<float>& m, int64_t r, int64_t c) {
    return static_cast<double>(m[static_cast<size_t>(r * cols + c)]);
  };
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<double> num(static_cast<size_t>(cols), 0.0), den(static_cast<size_t>(cols), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const double x = a[static_cast<size_t>(r)] * at(w, r, c);
        num[static_cast<size_t>(c)] += x * at(approximation, r, c);
        den[static_cast<size_t>(c)] += x * x;
      }
    }
    for (int64_t c = 0; c < cols; ++c) {
      const auto i = static_cast<size_t>(c);
      b[i] = den[i] > 0 && num[i] > 0 ? num[i] / den[i] : 1.0;
    }
    for (int64_t r = 0; r < rows; ++r) {
      double n = 0, d = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double x = b[static_cast<size_t>(c)] * at(w, r, c);
        n += x * at(approximation, r, c);
        d += x * x;
      }
      a[static_cast<size_t>(r)] = d > 0 && n > 0 ? n / d : 1.0;
    }
  }
  std::vector<float> fitted(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      fitted[static_cast<size_t>(r * cols + c)] =
          static_cast<float>(at(w, r, c) * a[static_cast<size_t>(r)] * b[static_cast<size_t>(c)]);
    }
  }
  return fitted;
}

// A tensor ORIG has and QUANT must hold unchanged. Returns false when it is not.
Result<bool> compare_kept(const Checkpoint& original, const Checkpoint& quantized,
                          const std::string& name, ModuleProblems& p) {
  const TensorInfo* o = original.find(name);
  const TensorInfo* q = quantized.find(name);
  if (o == nullptr) return true;  // not ORIG's: reported as unexpected by the caller
  if (q == nullptr) {
    p.layer.add("tensor '" + name + "' of ORIG is missing from QUANT");
    return false;
  }
  if (!dtype_equal(o->dtype, q->dtype) || o->shape != q->shape) {
    p.dtypes.add("kept tensor '" + name + "' is " + tensor_text(q->dtype, q->shape) +
                 ", ORIG has " + tensor_text(o->dtype, o->shape) +
                 " (tensors that are not quantized keep their stored dtype)");
    return false;
  }
  auto ov = original.view(name);
  if (!ov.ok()) return ov.error();
  auto qv = quantized.view(name);
  if (!qv.ok()) return qv.error();
  if (ov.value().nbytes() == qv.value().nbytes() &&
      std::memcmp(ov.value().data(), qv.value().data(), ov.value().nbytes()) == 0) {
    return true;
  }
  if (p.allow_rescaled) {
    auto of = to_float32(ov.value(), name);
    auto qf = to_float32(qv.value(), name);
    if (of.ok() && qf.ok() && positively_rescaled(of.value(), qf.value())) {
      ++p.rescaled;
      return true;
    }
    p.layer.add("tensor '" + name +
                "' is not quantized and differs from ORIG by more than positive per-channel "
                "factors (folded activation scales are positive)");
    return false;
  }
  p.layer.add("tensor '" + name + "' is not quantized but its bytes differ from ORIG");
  return false;
}

// The targeted module's relative weight error, or nullopt with a problem recorded.
Result<std::optional<double>> reconstruction_error(const PlannedModule& pm, const Plan& plan,
                                                   const Checkpoint& original,
                                                   const std::vector<NamedView>& views,
                                                   Problems& problems) {
  const bool scaled = plan.calibration == "activation_scaling";
  auto dequantized = plan.quantizer->dequantize(pm.info, views);
  if (!dequantized.ok()) {
    problems.add("module '" + pm.module.name +
                 "': dequantize failed: " + dequantized.error().to_string());
    return std::optional<double>();
  }
  const NamedTensor* weight = nullptr;
  for (const auto& t : dequantized.value()) {
    if (t.name == "weight") weight = &t;
  }
  if (weight == nullptr || !pm.module.weight) {
    problems.add("module '" + pm.module.name + "': dequantize returned no 'weight'");
    return std::optional<double>();
  }
  auto reference_view = original.view(*pm.module.weight);
  if (!reference_view.ok()) return reference_view.error();
  auto reference = to_float32(reference_view.value(), *pm.module.weight);
  if (!reference.ok()) return reference.error();
  auto approximation =
      to_float32(TensorView::of(weight->tensor), pm.module.name + " (dequantized)");
  if (!approximation.ok()) return approximation.error();
  if (reference.value().size() != approximation.value().size()) {
    problems.add("module '" + pm.module.name + "': dequantized weight has " +
                 std::to_string(approximation.value().size()) + " values, ORIG " +
                 std::to_string(reference.value().size()));
    return std::optional<double>();
  }
  if (scaled) {
    return std::optional<double>(
        relative_error(fit_channel_scales(reference.value(), approximation.value(),
                                          pm.info.out_features, pm.info.in_features),
                       approximation.value()));
  }
  return std::optional<double>(relative_error(reference.value(), approximation.value()));
}

}  // namespace

Status check_modules(const Plan& plan, const Checkpoint& original, const Checkpoint& quantized,
                     const std::map<std::string, double>& thresholds, VerifyCheck& layer_types,
                     VerifyCheck& dtypes, VerifyCheck& reconstruction,
                     std::vector<ModuleFigures>& modules) {
  Problems layer, dtype, recon;
  ModuleProblems p{layer, dtype};
  p.allow_rescaled = plan.calibration == "activation_scaling";
  std::set<std::string> accounted;
  int targeted = 0, kept = 0;
  double worst = -1;
  std::string worst_module;

  for (const PlannedModule& pm : plan.modules) {
    ModuleFigures mf;
    mf.name = pm.module.name;
    mf.bytes_before = pm.bytes_before;
    if (pm.action != ModuleAction::kQuantize) {
      ++kept;
      for (const auto& name : pm.module.tensors) {
        accounted.insert(name);
        auto same = compare_kept(original, quantized, name, p);
        if (!same.ok()) return same.error();
        const TensorInfo* q = quantized.find(name);
        if (q != nullptr) mf.bytes_after += q->nbytes;
      }
      modules.push_back(std::move(mf));
      continue;
    }
    ++targeted;
    bool complete = true, typed = true;
    std::vector<NamedView> views;
    const std::string prefix = pm.module.name + ".";
    for (const OutputTensor& out : pm.outputs) {
      accounted.insert(out.name);
      const TensorInfo* q = quantized.find(out.name);
      if (q == nullptr) {
        layer.add("module '" + pm.module.name + "': tensor '" + out.name.substr(prefix.size()) +
                  "' is missing (the method writes " + tensor_text(out.dtype, out.shape) + ")");
        complete = false;
        continue;
      }
      mf.bytes_after += q->nbytes;
      if (!dtype_equal(q->dtype, out.dtype) || q->shape != out.shape) {
        dtype.add("tensor '" + out.name + "' is stored as " + tensor_text(q->dtype, q->shape) +
                  ", the method declares " + tensor_text(out.dtype, out.shape));
        typed = false;
      }
      auto view = quantized.view(out.name);
      if (!view.ok()) return view.error();
      views.push_back(NamedView{out.name.substr(prefix.size()), std::move(view).value()});
    }
    // Tensors ORIG's module had besides the weight (bias, buffers) are carried over unchanged.
    for (const auto& name : pm.module.tensors) {
      if (pm.module.weight && name == *pm.module.weight) continue;
      auto same = compare_kept(original, quantized, name, p);
      if (!same.ok()) return same.error();
      if (!same.value()) complete = false;
    }
    if (complete) {
      Status checked = plan.quantizer->check_quantized(pm.info, views);
      if (!checked.ok()) {
        layer.add("module '" + pm.module.name +
                  "': the plugin's check_quantized refuses it: " + checked.error().to_string());
        complete = false;
      }
    }
    if (complete && typed) {
      auto error = reconstruction_error(pm, plan, original, views, recon);
      if (!error.ok()) return error.status();
      mf.relative_error = error.value();
      if (error.value()) {
        const double e = *error.value();
        // NaN is the worst there is and stays so.
        if (!std::isnan(worst) && (std::isnan(e) || e > worst)) {
          worst = e;
          worst_module = pm.module.name;
        }
      }
    }
    modules.push_back(std::move(mf));
  }
  for (const auto& name : plan.loose_tensors) {
    accounted.insert(name);
    auto same = compare_kept(original, quantized, name, p);
    if (!same.ok()) return same.error();
  }
  for (const TensorInfo& t : quantized.tensors()) {
    if (!accounted.count(t.name)) {
      layer.add("tensor '" + t.name + "' of QUANT is neither ORIG's nor one the method writes");
    }
  }

  const std::string counts =
      std::to_string(targeted) + " quantized modules, " + std::to_string(kept) + " kept" +
      (p.rescaled > 0 ? ", " + std::to_string(p.rescaled) + " tensors rescaled by folded scales"
                      : std::string());
  if (layer.empty()) {
    layer_types.outcome = CheckOutcome::kPass;
    layer_types.detail = counts;
  } else {
    fail(layer_types, layer.text());
  }
  if (dtype.empty()) {
    dtypes.outcome = CheckOutcome::kPass;
    dtypes.detail = counts;
  } else {
    fail(dtypes, dtype.text());
  }
  if (worst >= 0 || std::isnan(worst)) {
    judge(reconstruction, worst, thresholds);
    reconstruction.detail = "worst module: " + worst_module;
    Problems over;
    for (const auto& mf : modules) {
      if (mf.relative_error && !(*mf.relative_error <= *reconstruction.threshold)) {
        over.add(mf.name + " " + format_figure(*mf.relative_error));
      }
    }
    if (!over.empty()) {
      reconstruction.detail += "; over the threshold: " + over.text();
    }
    if (!recon.empty()) {
      reconstruction.outcome = CheckOutcome::kFail;
      reconstruction.detail += "; " + recon.text();
    }
  } else if (!recon.empty()) {
    fail(reconstruction, recon.text());
  } else if (targeted == 0) {
    skip(reconstruction, "no module is quantized");
  } else {
    skip(reconstruction, "no quantized module passed the layer_types and dtypes checks");
  }
  return ok_status();
}

}  // namespace qforge::verify
