// activation_scaling.hpp: the arithmetic of AWQ's scale and clip search.
#include "runtime/activation_scaling.hpp"

#include <algorithm>
#include <cmath>

namespace qforge::runtime::scaling {
namespace {

int64_t groups_of(int64_t in, int64_t group_size) { return group_size > 0 ? in / group_size : 1; }
int64_t width_of(int64_t in, int64_t group_size) { return group_size > 0 ? group_size : in; }

}  // namespace

at::Tensor weight_channel_mean(const at::Tensor& stacked, int64_t group_size) {
  const int64_t rows = stacked.size(0);
  const int64_t in = stacked.size(1);
  const at::Tensor grouped =
      stacked.to(at::kFloat)
          .abs()
          .reshape({rows, groups_of(in, group_size), width_of(in, group_size)});
  const at::Tensor relative = grouped / (std::get<0>(grouped.max(-1, true)) + 1e-6);
  return relative.reshape({rows, in}).mean(0);
}

at::Tensor candidate_scales(const at::Tensor& x_mean, const at::Tensor& w_mean, double ratio,
                            bool duo_scaling) {
  at::Tensor s =
      duo_scaling ? x_mean.pow(ratio) / (w_mean.pow(1.0 - ratio) + 1e-4) : x_mean.pow(ratio);
  s = s.clamp_min(1e-4);
  s = s / (s.max() * s.min()).sqrt();
  return at::where(at::isfinite(s), s, at::ones_like(s));
}

at::Tensor search_clip(const at::Tensor& w, const at::Tensor& x, int64_t group_size,
                       const PseudoQuantize& quantize) {
  const int64_t out = w.size(0);
  const int64_t in = w.size(1);
  const int64_t groups = groups_of(in, group_size);
  const int64_t width = width_of(in, group_size);
  const int64_t step = std::max<int64_t>(1, x.size(0) / kClipTokens);
  const at::Tensor xs = x.slice(0, 0, x.size(0), step).to(at::kFloat);
  // [groups, tokens, width]: each group's inputs, multiplied by the group's weight error below.
  const at::Tensor xg = xs.reshape({xs.size(0), groups, width}).permute({1, 0, 2}).contiguous();
  const at::Tensor wg = w.reshape({out, groups, width});
  const at::Tensor org_max = std::get<0>(wg.abs().max(-1, true));  // [out, groups, 1]
  at::Tensor best = org_max.clone();
  at::Tensor best_err;
  const auto steps = static_cast<int64_t>(kMaxShrink * static_cast<double>(kGrid));
  for (int64_t i = 0; i < steps; ++i) {
    const at::Tensor bound = org_max * (1.0 - static_cast<double>(i) / kGrid);
    const at::Tensor clipped = at::max(at::min(wg, bound), -bound).reshape({out, in});
    const at::Tensor diff = (quantize(clipped) - w).reshape({out, groups, width});
    // [groups, tokens, out] -> mean over tokens -> [out, groups, 1]
    const at::Tensor err =
        at::bmm(xg, diff.permute({1, 2, 0})).pow(2).mean(1).t().unsqueeze(-1).contiguous();
    if (!best_err.defined()) {
      best_err = err;
      continue;
    }
    const at::Tensor better = err < best_err;
    best_err = at::where(better, err, best_err);
    best = at::where(better, bound, best);
  }
  return best.squeeze(-1);
}

at::Tensor apply_clip(const at::Tensor& w, const at::Tensor& bound, int64_t group_size) {
  const int64_t out = w.size(0);
  const int64_t in = w.size(1);
  const at::Tensor b = bound.unsqueeze(-1);
  return at::max(at::min(w.reshape({out, groups_of(in, group_size), width_of(in, group_size)}), b),
                 -b)
      .reshape({out, in});
}

std::vector<ScalingGroup> llama_scaling_groups(const std::vector<std::string>& l,
                                               const std::string& input_norm,
                                               const std::string& post_norm, bool v_feeds_o) {
  std::vector<ScalingGroup> groups;
  groups.push_back(
      {input_norm, true, BlockNorm::kInput, BlockPart::kAttention, "", {l[0], l[1], l[2]}});
  if (v_feeds_o) {
    groups.push_back({l[2], false, BlockNorm::kInput, BlockPart::kLinear, l[3], {l[3]}});
  }
  groups.push_back({post_norm, true, BlockNorm::kPostAttention, BlockPart::kMlp, "", {l[4], l[5]}});
  groups.push_back({l[5], false, BlockNorm::kInput, BlockPart::kLinear, l[6], {l[6]}});
  return groups;
}

void fold_scales(const ScalingGroup& group, const at::Tensor& scales,
                 std::map<std::string, at::Tensor>& tensors) {
  for (const auto& m : group.members) {
    at::Tensor& w = tensors.at(m + ".weight");
    w = w * scales.unsqueeze(0);
  }
  if (group.previous_is_norm) {
    at::Tensor& n = tensors.at(group.previous);
    n = n / scales;
    return;
  }
  at::Tensor& w = tensors.at(group.previous + ".weight");
  w = w / scales.unsqueeze(1);
  const auto bias = tensors.find(group.previous + ".bias");
  if (bias != tensors.end()) bias->second = bias->second / scales;
}

double mean_squared_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).pow(2).mean().item<double>();
}

}  // namespace qforge::runtime::scaling
