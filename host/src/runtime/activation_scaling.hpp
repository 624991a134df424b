// AWQ's activation-aware search (FORMATS.md §2.5; AutoAWQ awq/quantize/quantizer.py,
// _search_best_scale and _compute_best_clip), written against a quantizer it is handed: the
// method's own pseudo-quantization (its plugin's quantize then dequantize), so any plugin whose
// manifest says `calibration: activation_scaling` is searched with its own rounding.
//
// A scaling group is linears that read the same input (q/k/v after the input norm, gate/up after
// the post-attention norm, o after v, down after up). Scaling input channel j by s_j, i.e.
// quantizing W·diag(s) and dividing the previous operation's output j by s_j, changes nothing
// before rounding and moves precision to the channels whose activations are large.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qforge/calibration.hpp"

namespace qforge::runtime::scaling {

// AutoAWQ's grid: 20 ratios (and 20 clip steps, of which max_shrink 0.5 tries the first 10).
inline constexpr int64_t kGrid = 20;
inline constexpr double kMaxShrink = 0.5;
inline constexpr int64_t kClipTokens = 512;

// The group's linears' weights stacked along rows, [sum out, in] float32: each weight divided by
// the max |w| of its quantization group (+1e-6), averaged over rows, per input channel (w_mean).
// group_size <= 0: the whole row is one group.
at::Tensor weight_channel_mean(const at::Tensor& stacked, int64_t group_size);

// The candidate scales of one ratio in [0, 1): duo scaling x_mean^r / (w_mean^(1-r) + 1e-4),
// else x_mean^r; clamped below at 1e-4, divided by sqrt(max·min), non-finite entries set to 1.
at::Tensor candidate_scales(const at::Tensor& x_mean, const at::Tensor& w_mean, double ratio,
                            bool duo_scaling);

// float32 [out, in] -> the dequantized float32 [out, in] of that weight after quantization.
using PseudoQuantize = std::function<at::Tensor(const at::Tensor& weight)>;

// The clip search of one weight w [out, in] on its inputs x [tokens, in] (already divided by the
// scales folded into w; at most kClipTokens rows are used, strided as AutoAWQ does). For each
// (row, group) it tries max |w| · (1 - i/20) for i < 10 and keeps the bound whose quantized
// group output Σ_k x_k·(q_k - w_k) has the smallest mean square over the tokens; i = 0 (no
// clipping) wins ties, so clipping never makes the sampled error larger. Returns [out, groups].
at::Tensor search_clip(const at::Tensor& w, const at::Tensor& x, int64_t group_size,
                       const PseudoQuantize& quantize);

// w clamped to [-bound, bound] per (row, group); bound [out, groups].
at::Tensor apply_clip(const at::Tensor& w, const at::Tensor& bound, int64_t group_size);

// A scaling group of a Llama block (AutoAWQ's LlamaAWQForCausalLM.get_layers_for_scaling).
struct ScalingGroup {
  std::string previous;                 // a norm's weight tensor, or a linear module
  bool previous_is_norm = false;        // else a linear whose output rows (and bias) are divided
  BlockNorm norm = BlockNorm::kInput;   // which norm, when previous_is_norm
  BlockPart part = BlockPart::kLinear;  // what the search compares
  std::string inspect;                  // kLinear: the linear whose output is compared
  std::vector<std::string> members;     // linear modules scaled by s
};

// The groups of a block from its linears in block order (q, k, v, o, gate, up, down) and its
// norms' weight tensors: q/k/v after the input norm, o after v (only when v's output feeds o one
// to one, i.e. no grouped-query attention), gate/up after the post-attention norm, down after up.
std::vector<ScalingGroup> llama_scaling_groups(const std::vector<std::string>& linears,
                                               const std::string& input_norm,
                                               const std::string& post_norm, bool v_feeds_o);

// AutoAWQ's apply_scale for one group, on float32 tensors by checkpoint name, in place: every
// member's "<m>.weight" times s along its inputs; the previous norm's weight divided by s, or the
// previous linear's "<p>.weight" rows and "<p>.bias" (when present) divided by s. Before any
// rounding the model computes exactly what it did.
void fold_scales(const ScalingGroup& group, const at::Tensor& scales,
                 std::map<std::string, at::Tensor>& tensors);

// Mean squared difference of two equally shaped tensors, in double (AutoAWQ's _compute_loss).
double mean_squared_error(const at::Tensor& a, const at::Tensor& b);

}  // namespace qforge::runtime::scaling
